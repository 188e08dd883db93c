#!/usr/bin/env python3
"""Rewrites a CUDA source for the host compiler and emulated_cuda.h (usage: to_host.py IN OUT).

Three changes, each keeping the line count (so that #line points errors at IN's lines):
  - a launch `kernel<<<grid, block, smem, stream>>>(args)` becomes
    `::rwkv::emu::launch(grid, block, smem, stream).run([&](const auto&... a) {
    kernel(a...); }, args)` (a call, so that the kernel's template arguments are deduced
    from the arguments as the CUDA compiler deduces them);
  - `extern __shared__ [__align__(n)] T name[];` (dynamic shared memory) becomes a pointer
    to the emulated block's dynamic shared memory;
  - an #include of cub (emulated_cuda.h has the one cub call the sources make) is dropped.
"""
import re
import sys

DYNAMIC_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?([\w:]+)\s+(\w+)\s*\[\s*\]\s*;")
CUB_INCLUDE = re.compile(r"^\s*#\s*include\s*<cub/[^>]*>\s*$", re.M)


def kernel_start(text, end):
    """Where the kernel expression (a name, maybe qualified, maybe with template
    arguments) before the `<<<` at `end` starts."""
    j = end
    while j > 0 and text[j - 1].isspace():
        j -= 1
    if text[j - 1] == ">":
        depth, k = 0, j - 1
        while k >= 0:
            depth += text[k] in ">)"
            depth -= text[k] in "<("
            if depth == 0:
                break
            k -= 1
        j = k
        while j > 0 and text[j - 1].isspace():
            j -= 1
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] in "_:"):
        j -= 1
    return j


def to_host(text):
    text = CUB_INCLUDE.sub("", text)
    text = DYNAMIC_SHARED.sub(
        lambda m: f"{m.group(1)}* {m.group(2)} = "
                  f"static_cast<{m.group(1)}*>(::rwkv::emu::dynamic_shared());", text)
    out, i = [], 0
    while True:
        start = text.find("<<<", i)
        if start < 0:
            out.append(text[i:])
            return "".join(out)
        end = text.find(">>>", start)
        paren = text.find("(", end)
        if end < 0 or paren < 0 or text[end + 3:paren].strip():
            raise SystemExit(f"to_host.py: a launch without '>>>(' at offset {start}")
        k0 = kernel_start(text, start)
        kernel = text[k0:start]
        out.append(text[i:k0])
        no_args = text[paren + 1:].lstrip().startswith(")")
        out.append("::rwkv::emu::launch(" + text[start + 3:end] + ").run("
                   "[&](const auto&... rwkv_emu_a) { " + " ".join(kernel.split()) +
                   "(rwkv_emu_a...); }" + ("" if no_args else ", ") + "\n" * kernel.count("\n"))
        i = paren + 1


def main(argv):
    if len(argv) != 2:
        print("usage: to_host.py IN OUT", file=sys.stderr)
        return 2
    src, dst = argv
    with open(src, encoding="utf-8") as f:
        text = f.read()
    with open(dst, "w", encoding="utf-8") as f:
        f.write(f'#line 1 "{src}"\n' + to_host(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
