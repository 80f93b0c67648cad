#!/usr/bin/env python3
"""Tests mirror sources: every Swift file Sources/<Module>/.../<Name>.swift should have a unit-test
file <Name>Tests.swift somewhere under Tests/<Module>Tests/ (ideally in the same sub-folder).

  scripts/test-mirror.py            list source files without a mirrored test file
  scripts/test-mirror.py --check    exit 1 when a source file lacks one and is in neither list below;
                                    list entries that are stale (the file got its test, or is gone)
                                    are reported to be removed, without failing

EXEMPT holds files whose behaviour is tested elsewhere under another name, each with where. MISSING
holds the known gaps still to be written; a new source file must come with its test file instead
of joining it. C kernels (Sources/CSparseKernels) are tested through their Swift operators and are
not listed here."""
import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Files whose behaviour is covered under another name: path -> where (keep short and true).
EXEMPT = {
    # The executable target has no unit-test target (SwiftPM cannot import an executable's code);
    # its commands are tested end to end against the built binary.
    'Sources/sparse-serve/SparseServeCommand.swift': 'Tests/integration (every test starts the binary: serve flags, test_cli.py)',
    'Sources/sparse-serve/Compress.swift': 'Tests/integration/test_artifacts.py, test_calibration.py, test_quantized.py',
    'Sources/sparse-serve/RecoveryArguments.swift': 'Tests/integration/test_recovery.py, test_recovery_minilm.py',
    'Sources/sparse-serve/Inspect.swift': 'Tests/integration/test_cli.py',
    'Sources/sparse-serve/Probe.swift': 'Tests/integration/test_deploy.py (the container health probe)',
    'Sources/sparse-serve/OTLPExport.swift': 'Tests/integration/test_tracing.py (span export against a real OTLP/HTTP receiver)',
    # Declarations only: a settings struct whose fields are each tested where they act.
    'Sources/HTTPServer/HTTPServerConfiguration.swift': 'HTTPServerTests, HTTPHeadPolicyTests, ConnectionFairnessTests (each limit and timeout)',
    # Settings structs filled by ServiceConfig.parse: their defaults and every field are tested there.
    'Sources/SparseServe/App/Config/ServerConfig.swift': 'ServiceConfigTests (defaults, every server field, errors per field)',
    'Sources/SparseServe/App/Config/EndpointConfig.swift': 'ServiceConfigTests (endpoint fields, keys, batching, compression)',
    # Declarations only (the calibration samples, stage and protocol); their implementations are tested.
    'Sources/SparseModels/Models/LayerwiseCalibration.swift': 'MLPModel+CalibrationTests, CalibratedCompressorTests (bert-encoder stages)',
    # A serial queue and a read buffer; exercised by every socket test (HTTPServerTests.testConnectionsAreSpreadOverIOQueues).
    'Sources/HTTPServer/IOLoop.swift': 'HTTPServerTests',
}

# Known gaps, to be written: none left (the last eleven landed with issue 14). A new source file
# comes with its test file; list a file here only as a stated, temporary gap.
MISSING = set()


def sources():
    for path in sorted((ROOT / 'Sources').rglob('*.swift')):
        yield path.relative_to(ROOT).as_posix()


def test_names():
    """Module -> {test file stem: [paths]} for every *Tests.swift under Tests/<Module>Tests."""
    names = {}
    for path in (ROOT / 'Tests').rglob('*Tests.swift'):
        relative = path.relative_to(ROOT)
        module = relative.parts[1]
        if module.endswith('Tests'):
            names.setdefault(module[:-len('Tests')], {}).setdefault(path.stem[:-len('Tests')], []).append(relative.as_posix())
    return names


def unmirrored():
    names = test_names()
    for source in sources():
        module, stem = source.split('/')[1], pathlib.PurePosixPath(source).stem
        tests = names.get(module, {})
        # An extension file `Type+Topic.swift` may be mirrored by `Type+TopicTests` or `TypeTopicTests`.
        if stem not in tests and stem.replace('+', '') not in tests:
            yield source


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--check', action='store_true', help='fail on unlisted gaps and on stale list entries')
    args = parser.parse_args()
    gaps = list(unmirrored())
    total = sum(1 for _ in sources())
    if not args.check:
        for source in gaps:
            note = ' (exempt: %s)' % EXEMPT[source] if source in EXEMPT else ''
            print(source + note)
        print('%d of %d source files without a mirrored test file (%d exempt, %d listed as missing)'
              % (len(gaps), total, sum(s in EXEMPT for s in gaps), sum(s in MISSING for s in gaps)))
        return 0
    problems = [f'{s}: no Tests/.../{pathlib.PurePosixPath(s).stem}Tests.swift (write one; see scripts/test-mirror.py)'
                for s in gaps if s not in EXEMPT and s not in MISSING]
    gap_set = set(gaps)
    for listed in list(EXEMPT) + list(MISSING):
        if not (ROOT / listed).exists():
            print(f'note: {listed} is listed in scripts/test-mirror.py but no longer exists; remove the line')
        elif listed not in gap_set:
            print(f'note: {listed} now has a mirrored test file; remove it from the list in scripts/test-mirror.py')
    for problem in problems:
        print(problem)
    missing = sum(s in MISSING for s in gaps)
    print(f'tests mirror sources: {total - len(gaps)} of {total} files mirrored, {len(EXEMPT)} exempt, {missing} known gaps')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
