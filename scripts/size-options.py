#!/usr/bin/env python3
"""Measures what storing less would save: the compressed size a case of its event details
and document as stored today, and as three ways of storing less would write them
(docs/performance.md, "Size").

    gridloop bench seed --cases 1000000 --data /tmp/p1m
    scripts/size-options.py /tmp/p1m/gridloop.db [cases]

Each form gets a dictionary of its own, trained the way scripts/train-dicts.py trains
today's (free text emptied, 32 KiB) on half of the sampled cases and measured on the
other half, so that no form is flattered by a dictionary made for another. Sizes are
those of the stored values (tag byte, frame without magic number or dictionary id), not
counting row headers.

Needs python3 with the zstandard module and the zstd command line tool.
"""
import json, os, random, sqlite3, subprocess, sys, tempfile

import zstandard

DICTS = os.path.join(os.path.dirname(__file__), "..", "crates", "store-sqlite", "dict")
MAGIC = bytes.fromhex("28b52ffd")
TEXT = {"title", "description", "result", "address", "name", "comment", "note",
        "rating_comment", "reject_reason", "reason", "content", "summary", "text"}
# Fields of a case that `cases` holds in columns (or derives from them).
COLUMNS = {"id", "number", "status", "version", "channel", "category", "area_path",
           "org_path", "created_by", "deadline", "overdue", "due_at", "created_at",
           "updated_at", "location", "source_key", "visit_id"}


def scrub(v, text=False):
    if isinstance(v, dict):
        return {k: scrub(x, text or k in TEXT) for k, x in v.items()}
    if isinstance(v, list):
        return [scrub(x, text) for x in v]
    return "" if text and isinstance(v, str) else v


def canonical(v):
    # serde_json's output for these values: sorted keys, no spaces.
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def decoder(name):
    d = zstandard.ZstdCompressionDict(open(os.path.join(DICTS, f"{name}-1.zdict"), "rb").read())
    z = zstandard.ZstdDecompressor(dict_data=d)
    return lambda v: json.loads(v if isinstance(v, str)
                                else z.decompress(MAGIC + v[1:], max_output_size=1 << 24))


def new_values_only(e):
    """Details with each change as its new value, and nothing the changes already say."""
    e = dict(e)
    changes = {k: v[1] for k, v in e.get("changes", {}).items()}
    if changes:
        e["changes"] = changes
    e.pop("from", None)
    if "status" in changes:
        e.pop("to", None)
    for k in [k for k in e if k != "changes" and k in changes and changes[k] == e[k]]:
        e.pop(k)
    return e


def full_create(events, doc):
    """The create event holding every field of the document that no event records, no
    column holds and that is not its default: enough to derive the document."""
    seen = set()
    for e in events:
        seen |= set(e) | set(e.get("changes", {}))
    extra = {k: v for k, v in doc.items()
             if k not in seen and k not in COLUMNS and v not in (None, False, 0, [], {})}
    return [dict(events[0], **extra)] + events[1:]


FORMS = {
    "event details as stored": lambda ev, doc: ev,
    "event details, new values only": lambda ev, doc: [new_values_only(e) for e in ev],
    "event details, new values only, create holding the report":
        lambda ev, doc: [new_values_only(e) for e in full_create(ev, doc)],
    "document as stored": lambda ev, doc: [doc],
    "document without the column fields":
        lambda ev, doc: [{k: v for k, v in doc.items() if k not in COLUMNS}],
}


def train(samples):
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, s in enumerate(samples):
            path = os.path.join(tmp, str(i))
            with open(path, "w") as f:
                f.write(s)
            files.append(path)
        out = os.path.join(tmp, "dict")
        subprocess.run(["zstd", "--train", *files, "-o", out, "--maxdict=32768", "-q"],
                       check=True)
        return zstandard.ZstdCompressionDict(open(out, "rb").read())


def main():
    db = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 6000
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    event, case = decoder("event"), decoder("case")
    (top,) = conn.execute("SELECT max(id) FROM cases").fetchone()
    random.seed(7)
    cases = []
    for cid in random.sample(range(1, top + 1), min(n, top)):
        events = [event(d) for (d,) in conn.execute(
            "SELECT details FROM events WHERE case_id = ? ORDER BY seq", (cid,))]
        row = conn.execute("SELECT doc FROM case_docs WHERE id = ?", (cid,)).fetchone()
        if events and row:
            cases.append((events, case(row[0])))
    half = len(cases) // 2
    learn, test = cases[:half], cases[half:]
    print(f"{len(test)} cases measured, {sum(len(e) for e, _ in test) / len(test):.2f} "
          "events a case")
    for name, form in FORMS.items():
        samples = [canonical(scrub(v)) for ev, doc in learn for v in form(ev, doc)]
        random.shuffle(samples)
        z = zstandard.ZstdCompressor(level=3, dict_data=train(samples[:20000]),
                                     write_dict_id=False, write_checksum=False)
        # As stored: a tag byte, then the frame without its 4-byte magic number.
        total = sum(len(z.compress(canonical(v).encode())) - 3
                    for ev, doc in test for v in form(ev, doc))
        print(f"{name:62} {total / len(test):7.1f} bytes a case")


if __name__ == "__main__":
    main()
