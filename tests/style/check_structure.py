#!/usr/bin/env python3
"""The size limits of worker/: no C function over 120 lines, no file over 900 lines.

A function's length is counted from the first line of its definition (the return type,
after any comment above it) to the line of its closing brace, both included. A file's
length is its number of lines. Every offender is named, with where it starts; the exit
status is 1 if there is any, 2 if a file cannot be read as C (unbalanced braces).

Function bodies are found on a copy of the source in which comments, string and character
literals and preprocessor lines are blanked out (newlines kept), so braces inside them do
not count. A brace at file scope opens a function body when the text before it, back to the
previous `;` or `}` at file scope, ends with a parameter list `(...)`; `extern "C" {` blocks
are looked into. This fits the house style (K&R: the opening brace at the end of the
signature, which may span several lines, with static/inline and attributes before it).

Usage: check_structure.py [--max-function N] [--max-file N] [PATH ...]
(PATH: files or folders, searched for *.c and *.h; default: worker/ of this repository).
"""

import argparse
import re
import sys
from pathlib import Path

MAX_FUNCTION_LINES = 120
MAX_FILE_LINES = 900
ROOT = Path(__file__).resolve().parents[2]


class ParseError(Exception):
    pass


def _spaces(s):
    return re.sub(r"[^\n]", " ", s)


def blank_out(text):
    """text with comments, string/char literals and preprocessor lines replaced by spaces
    (a literal keeps its quotes); newlines stay where they are, so lines still count.
    Of an #if / #ifdef, only the first branch is kept: the code of its #elif and #else
    branches is blanked too (two versions of one signature must not open two bodies)."""
    out = []
    i, n = 0, len(text)
    line_start = True  # only whitespace since the last newline
    conditionals = []  # per open #if: True once past its first branch
    skipping = False

    def emit(s):
        out.append(_spaces(s) if skipping else s)

    while i < n:
        c = text[i]
        if c == "\n":
            out.append(c)
            line_start = True
            i += 1
        elif c in " \t\r\f\v":
            out.append(c)
            i += 1
        elif line_start and c == "#":
            # a preprocessor line, with its backslash continuations and comments
            start = i
            while i < n and text[i] != "\n":
                if text.startswith("/*", i):
                    end = text.find("*/", i + 2)
                    i = n if end < 0 else end + 2
                elif text[i] == "\\" and text.startswith("\n", i + 1):
                    i += 2
                else:
                    i += 1
            directive = re.match(r"#\s*(\w*)", text[start:i]).group(1)
            if directive in ("if", "ifdef", "ifndef"):
                conditionals.append(False)
            elif directive in ("elif", "else") and conditionals:
                conditionals[-1] = True
            elif directive == "endif" and conditionals:
                conditionals.pop()
            skipping = any(conditionals)
            out.append(_spaces(text[start:i]))
        elif text.startswith("//", i):
            start = i
            while i < n and text[i] != "\n":
                # a backslash at the end of a // comment continues it
                i += 2 if text[i] == "\\" and text.startswith("\n", i + 1) else 1
            out.append(_spaces(text[start:i]))
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ParseError(f"unterminated comment at line {text.count(chr(10), 0, i) + 1}")
            out.append(_spaces(text[i:end + 2]))
            line_start = False
            i = end + 2
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\\":
                    j += 1  # skips the escaped character (a quote, a backslash, a newline)
                elif text[j] == "\n":
                    break
                j += 1
            if j >= n or text[j] != c:
                raise ParseError(f"unterminated literal at line {text.count(chr(10), 0, i) + 1}")
            emit(c + _spaces(text[i + 1:j]) + c)
            line_start = False
            i = j + 1
        else:
            emit(c)
            line_start = False
            i += 1
    return "".join(out)


FUNCTION_HEAD = re.compile(r"\)\s*(?:__attribute__\s*\(\(.*\)\)\s*)*$", re.S)
EXTERN_C = re.compile(r'^extern\s*"\s*"$')


def assigns(head):
    """Whether head has an `=` outside parentheses (an initializer, e.g. a compound
    literal `= (struct s){...}`, not a function)."""
    depth = 0
    for c in head:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "=" and depth == 0:
            return True
    return False


def function_name(head):
    """The name of the function whose signature is head (it ends with the parameter list,
    maybe followed by __attribute__((...)))."""
    end = head.rstrip()
    while end.endswith(")"):
        depth = 0
        for k in range(len(end) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(end[k], 0)
            if depth == 0:
                break
        m = re.search(r"([A-Za-z_]\w*)\s*$", end[:k])
        if not m:
            return "?"
        if m.group(1) != "__attribute__":
            return m.group(1)
        end = end[:m.start()].rstrip()
    return "?"


def functions(text):
    """[(name, first line, last line)] of the function definitions in C source text."""
    code = blank_out(text)
    found = []
    stack = []  # per open brace: "function", "block" (file-scope aggregate) or "extern"
    head_start = 0  # where the current file-scope declaration begins
    body = None  # (name, first line) of the function being read
    for i, c in enumerate(code):
        if c not in "{};":
            continue
        file_scope = all(kind == "extern" for kind in stack)
        if c == "{":
            if not file_scope:
                stack.append("inner")
                continue
            head = code[head_start:i].strip()
            if EXTERN_C.match(head):
                stack.append("extern")
                head_start = i + 1
            elif FUNCTION_HEAD.search(head) and not assigns(head):
                first = code[head_start:i]
                lead = len(first) - len(first.lstrip())
                body = (function_name(head), code.count("\n", 0, head_start + lead) + 1)
                stack.append("function")
            else:
                stack.append("block")
        elif c == "}":
            if not stack:
                raise ParseError(f"unmatched '}}' at line {code.count(chr(10), 0, i) + 1}")
            kind = stack.pop()
            if kind == "function":
                found.append((body[0], body[1], code.count("\n", 0, i) + 1))
                body = None
            if all(k == "extern" for k in stack) and kind != "block":
                head_start = i + 1
        elif file_scope:  # ';' ends a file-scope declaration
            head_start = i + 1
    if stack:
        raise ParseError(f"{len(stack)} '{{' never closed")
    return found


def line_count(text):
    return text.count("\n") + (0 if text.endswith("\n") or not text else 1)


def sources(paths):
    for p in paths:
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.suffix in (".c", ".h") and q.is_file())
        else:
            yield p


def check(paths, max_function=MAX_FUNCTION_LINES, max_file=MAX_FILE_LINES, base=None):
    """(offences, errors): one line of text per offender / per file that cannot be read."""
    offences, errors = [], []
    for path in sources(paths):
        shown = path
        if base is not None:
            try:
                shown = path.resolve().relative_to(base)
            except ValueError:
                pass
        text = path.read_text(encoding="utf-8", errors="replace")
        n = line_count(text)
        if n > max_file:
            offences.append(f"{shown}: {n} lines (limit {max_file})")
        try:
            for name, first, last in functions(text):
                length = last - first + 1
                if length > max_function:
                    offences.append(f"{shown}:{first}: function {name} is {length} lines "
                                    f"(limit {max_function})")
        except ParseError as e:
            errors.append(f"{shown}: cannot find its functions: {e}")
    return offences, errors


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-function", type=int, default=MAX_FUNCTION_LINES)
    ap.add_argument("--max-file", type=int, default=MAX_FILE_LINES)
    ap.add_argument("--list", action="store_true",
                    help="print every function found with its length, then check")
    ap.add_argument("paths", nargs="*", type=Path)
    args = ap.parse_args(argv)
    paths = args.paths or [ROOT / "worker"]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"check_structure: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    base = Path.cwd().resolve()
    if args.list:
        for path in sources(paths):
            for name, first, last in functions(path.read_text(encoding="utf-8",
                                                              errors="replace")):
                print(f"{path}:{first}: {name} {last - first + 1}")
    offences, errors = check(paths, args.max_function, args.max_file, base)
    for line in offences + errors:
        print(line)
    if errors:
        return 2
    if offences:
        print(f"check_structure: {len(offences)} over the limits (functions "
              f"<= {args.max_function} lines, files <= {args.max_file} lines)")
        return 1
    print(f"check_structure: {sum(1 for _ in sources(paths))} files within the limits "
          f"(functions <= {args.max_function} lines, files <= {args.max_file} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
