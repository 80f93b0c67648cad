#!/usr/bin/env python3
"""Lists Swift functions, initializers and closures-as-properties longer than a limit (default 80
lines, body braces included) under the given folders (default Sources). Exits 1 when any is found,
except in files named with --allow (the HTTP parser's state machine).

  scripts/long-functions.py [--limit 80] [--allow Sources/HTTPServer/HTTPRequestParser.swift] [DIR...]

Braces inside string literals and comments are skipped; a function's length runs from its `func`
/ `init` line to its closing brace."""
import argparse
import pathlib
import re
import sys

DECL = re.compile(r'^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|package|internal|private|fileprivate|open|static|class|'
                  r'override|mutating|nonisolated|convenience|required|final|@inlinable|@discardableResult)\s+)*'
                  r'(?:func\s+[^\s(<]+|init[?!]?|deinit|subscript)\s*[(<{]?')


def code_braces(line, state):
    """Counts { and } outside strings and comments; `state` carries the end marker of an open block comment or multi-line string."""
    depth = 0
    i = 0
    while i < len(line):
        mode = state['mode']
        if mode:  # inside a block comment or a multi-line string: look for its end
            end = line.find(mode, i)
            if end < 0:
                return depth
            state['mode'] = None
            i = end + len(mode)
            continue
        if line.startswith('//', i):
            return depth
        opener = next((o for o in ('/*', '"""') if line.startswith(o, i)), None)
        if opener:
            state['mode'] = '*/' if opener == '/*' else opener
            i += len(opener)
            continue
        c = line[i]
        if c == '"':
            i += 1
            while i < len(line) and line[i] != '"':
                i += 2 if line[i] == '\\' else 1
        elif c == '{':
            depth += 1
        elif c == '}':
            depth -= 1
        i += 1
    return depth


def long_functions(path, limit):
    lines = path.read_text(encoding='utf-8').splitlines()
    found = []
    open_decls = []  # (name, start line, depth before the body)
    depth = 0
    state = {'mode': None}
    for number, line in enumerate(lines, 1):
        if not state['mode'] and DECL.match(line):
            open_decls.append((line.strip()[:70], number, depth))
        depth += code_braces(line, state)
        # A declaration ends when the depth falls back to where it started: after its body, or on
        # the next line for one without a body (a protocol requirement).
        while open_decls and depth <= open_decls[-1][2] and (number > open_decls[-1][1] or '{' in line):
            name, start, _ = open_decls.pop()
            if number - start + 1 > limit:
                found.append((number - start + 1, start, name))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--limit', type=int, default=80)
    parser.add_argument('--allow', action='append', default=['Sources/HTTPServer/HTTPRequestParser.swift'])
    parser.add_argument('dirs', nargs='*', default=['Sources'])
    args = parser.parse_args()
    bad = False
    for d in args.dirs:
        for path in sorted(pathlib.Path(d).rglob('*.swift')):
            for length, start, name in long_functions(path, args.limit):
                allowed = str(path) in args.allow
                bad |= not allowed
                print(f"{path}:{start}: {length} lines{' (allowed)' if allowed else ''}: {name}")
    sys.exit(1 if bad else 0)


if __name__ == '__main__':
    main()
