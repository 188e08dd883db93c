#!/usr/bin/env python3
"""Every CUDA runtime, cuBLAS and NCCL call's status is checked, and the last error after
every kernel launch (the CUDA backend issue's rule; kernels/cuda/cuda_check.h).

Scans the C++/CUDA sources under the given root for:
  - calls of a cuda*/cublas*/nccl* API function that are not the argument of
    CUDA_CHECK, CUBLAS_CHECK or NCCL_CHECK. Allowed unchecked: the error queries
    (cudaGetErrorName/String, cublasGetStatusString, ncclGetErrorString, cudaGetLastError,
    which clears the sticky error), a status kept in a variable (`cudaError_t rc = ...`),
    and the releases in a destructor (which must not throw);
  - kernel launches (`<<<...>>>(...);`) whose next statement is not CUDA_CHECK_LAUNCH()
    (an `if (...) a<<<>>>(); else b<<<>>>();` chain may share the one after it).
Prints file:line and what is wrong for each; exits 1 if there is any.

`--self-test` first runs the checker on planted snippets: each bad one must be reported,
each good one must not (so the test cannot pass by finding nothing).
"""
import pathlib
import re
import sys

SOURCES = ("kernels", "trainer", "model", "bench", "tests", "cli", "common", "data_pipeline")
SUFFIXES = {".cu", ".cuh", ".cpp", ".h"}
CHECKS = ("CUDA_CHECK", "CUBLAS_CHECK", "NCCL_CHECK")
# A status a test compares with what it expects is checked too.
EXPECTS = ("EXPECT_EQ", "ASSERT_EQ", "EXPECT_NE", "ASSERT_NE")
DEATHS = ("EXPECT_DEATH", "ASSERT_DEATH")
QUERIES = {"cudaGetErrorName", "cudaGetErrorString", "cublasGetStatusString",
           "ncclGetErrorString", "cudaGetLastError"}
RELEASES = re.compile(r"(Destroy|Free)\w*$|^cudaStreamSynchronize$|^cudaDeviceSynchronize$")
API_CALL = re.compile(r"\b((?:cuda|cublas|nccl)[A-Z]\w*)\s*\(")
LAUNCH = re.compile(r"<<<[^;]*?>>>\s*\(")
DESTRUCTOR = re.compile(r"~\s*\w+\s*\(\s*\)\s*(?:noexcept\s*)?(?:override\s*)?\{")


def strip(text):
    """Comments and string/char literals blanked with spaces (line numbers kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def matching(text, i, open_ch, close_ch):
    """Index of the bracket closing the one at i."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_ch:
            depth += 1
        elif text[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j
    return len(text)


def enclosing_call(text, i):
    """Name of the call whose parentheses hold position i (None at statement level)."""
    depth = 0
    for j in range(i - 1, -1, -1):
        c = text[j]
        if c == ")":
            depth += 1
        elif c == "(":
            if depth == 0:
                m = re.search(r"(\w+)\s*$", text[:j])
                return m.group(1) if m else ""
            depth -= 1
        elif c in ";{}" and depth == 0:
            return None
    return None


def next_statement(text, i):
    """The statement after position i, with closing braces before it skipped."""
    j = i
    while j < len(text) and text[j] in " \t\n}":
        j += 1
    end = text.find(";", j)
    return text[j:] if end < 0 else text[j:end + 1]


def problems(text):
    """(offset, message) of each unchecked call or launch in `text` (already stripped)."""
    found = []
    destructors = []
    for m in DESTRUCTOR.finditer(text):
        destructors.append((m.end() - 1, matching(text, m.end() - 1, "{", "}")))
    for m in API_CALL.finditer(text):
        name = m.group(1)
        if name in QUERIES:
            continue
        if enclosing_call(text, m.start()) in CHECKS + EXPECTS:
            continue
        before = text[:m.start()].rstrip()
        if re.search(r"\b(cudaError_t|cublasStatus_t|ncclResult_t)\s+\w+\s*=$", before):
            continue
        if RELEASES.search(name) and any(a < m.start() < b for a, b in destructors):
            continue
        found.append((m.start(), f"{name}(...) is not checked (wrap it in "
                                 "CUDA_CHECK/CUBLAS_CHECK/NCCL_CHECK)"))
    for m in LAUNCH.finditer(text):
        end = matching(text, m.end() - 1, "(", ")")
        semi = text.find(";", end)
        stmt = next_statement(text, semi + 1)
        while stmt.lstrip().startswith("else") and ">>>" in stmt:
            semi = text.find(";", text.find(stmt, semi + 1) + len(stmt) - 1)
            stmt = next_statement(text, semi + 1)
        if enclosing_call(text, m.start()) in DEATHS:
            continue
        if not re.match(r"\s*CUDA_CHECK_LAUNCH\s*\(\s*\)\s*;", stmt) and not re.match(
                r"\s*(EXPECT|ASSERT)_EQ\s*\(\s*cudaGetLastError\s*\(\s*\)", stmt):
            found.append((m.start(), "kernel launch not followed by CUDA_CHECK_LAUNCH()"))
    return found


def check_tree(root):
    bad = 0
    for top in SOURCES:
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in SUFFIXES or not path.is_file():
                continue
            raw = path.read_text(encoding="utf-8", errors="replace")
            text = strip(raw)
            for offset, msg in problems(text):
                line = text.count("\n", 0, offset) + 1
                print(f"{path.relative_to(root)}:{line}: {msg}")
                bad += 1
    return bad


PLANTED_BAD = [
    "void f(float* p) { cudaMemset(p, 0, 4); }",
    "void f() { CUDA_CHECK(cudaMalloc(&p, 4)); cudaFree(p); }",
    "void f() { k<<<1, 32>>>(x); }",
    "void f() { k<<<1, 32>>>(x); g(); CUDA_CHECK_LAUNCH(); }",
    "void f() { if (a) k<<<1, 32>>>(x); else j<<<1, 32>>>(x); }",
    "void f() { a<<<1, 1>>>(); b<<<1, 1>>>(); CUDA_CHECK_LAUNCH(); }",
    "void f() { auto s = cublasSetStream(h, s); }",
    "void f() { NCCL_CHECK(ncclGroupStart()); ncclAllReduce(a, b, n, t, o, c, s); }",
    "X::~X() { cudaMemcpy(a, b, 4, k); }",
    "void f() { k<T><<<1, 32>>>(x); }",
    "void f() { EXPECT_TRUE(cudaFree(p) == cudaSuccess); }",
    "void f() { k<<<1, 32>>>(x); EXPECT_TRUE(cudaGetLastError() == cudaSuccess); }",
]
PLANTED_GOOD = [
    "void f() { CUDA_CHECK(cudaMemsetAsync(p, 0, 4, s)); }",
    "void f() { CUBLAS_CHECK(cublasGemmEx(h, a, b, m, n, k, &al, x, t, 1, y, t, 1, &be, z, t, 1,"
    " c, g)); }",
    "void f() { k<<<g, b, 0, s>>>(x, y);\n  CUDA_CHECK_LAUNCH(); }",
    "void f() { if (a) k<<<1, 32>>>(x); else j<<<1, 32>>>(x); CUDA_CHECK_LAUNCH(); }",
    "void f() { for (;;) { k<<<1, 32>>>(x); CUDA_CHECK_LAUNCH(); } }",
    "void f() { const cudaError_t rc = cudaGetDeviceCount(&n); cudaGetLastError(); }",
    "X::~X() { cudaStreamSynchronize(s); cublasDestroy(h); cudaFree(p); }",
    "void f() { // cudaFree(p) in a comment\n throw E(\"cudaMalloc(x) failed\"); }",
    "void f() { NCCL_CHECK(ncclCommInitRank(&c, n, id, r)); }",
    "void f() { EXPECT_EQ(cudaFuncSetAttribute(k, a, 1), cudaErrorInvalidValue); }",
    "void f() { k<<<1, 2048>>>(x);\n EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue); }",
    "void f() { EXPECT_DEATH(k<<<1, 64>>>(d), \"abort\"); }",
    "auto f() { return std::make_unique<A<B<float>>>(n, g); }",
]


def self_test():
    ok = True
    for snippet in PLANTED_BAD:
        if not problems(strip(snippet)):
            print(f"self-test: not reported: {snippet!r}")
            ok = False
    for snippet in PLANTED_GOOD:
        for _, msg in problems(strip(snippet)):
            print(f"self-test: wrongly reported in {snippet!r}: {msg}")
            ok = False
    return ok


def main(argv):
    args = [a for a in argv if a != "--self-test"]
    if len(args) != 1:
        print("usage: check_cuda_calls.py [--self-test] SOURCE_ROOT", file=sys.stderr)
        return 2
    if "--self-test" in argv and not self_test():
        return 1
    bad = check_tree(pathlib.Path(args[0]))
    if bad:
        print(f"{bad} unchecked CUDA/cuBLAS/NCCL call(s) or launch(es)")
        return 1
    print("every CUDA/cuBLAS/NCCL call and kernel launch is checked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
