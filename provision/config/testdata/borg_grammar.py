# Asks borg's own code what it makes of config values, one JSON line in
# ([kind, value]) and one out ([accepted, detail]) per value. Run by
# grammar_test.go with the interpreter borg itself runs under.
import json
import sys

from borg.compress import CompressionSpec
from borg.helpers.parseformat import Location
from borg.patterns import parse_exclude_pattern


def check(kind, value):
    if kind == "compression":
        CompressionSpec(value)
        return ""
    if kind == "exclude":
        pattern, _ = parse_exclude_pattern(value)
        return type(pattern).__name__
    if kind == "repo":
        whole = Location(value)
        with_archive = Location(value + "::archive")
        if whole.proto != "file" or whole.archive is not None or whole.path != value:
            raise ValueError("not a local repository: %s" % whole)
        if with_archive.path != whole.path or with_archive.archive != "archive":
            raise ValueError("REPO::archive splits elsewhere: %s" % with_archive)
        return whole.path
    raise ValueError("unknown kind " + kind)


for line in sys.stdin:
    kind, value = json.loads(line)
    try:
        print(json.dumps([True, check(kind, value)]))
    except BaseException as e:  # argparse raises SystemExit-like errors too
        print(json.dumps([False, "%s: %s" % (type(e).__name__, e)]))
    sys.stdout.flush()
