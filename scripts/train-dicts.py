#!/usr/bin/env python3
"""Trains the zstd dictionaries the SQLite store compresses case documents and event
details with (crates/store-sqlite/dict/, read by crates/store-sqlite/src/codec.rs).

    gridloop bench seed --cases 20000 --streets 20 --data /tmp/dict-src
    scripts/train-dicts.py /tmp/dict-src/gridloop.db crates/store-sqlite/dict 2

Free text (titles, descriptions, results, addresses, names, notes, comments) is emptied
before training: a dictionary should carry the structure every record shares (keys, enum
values, the shape of timestamps and codes), not the benchmark's sample sentences, which
would flatter the figures and mean nothing for real reports.

A stored value names its dictionary by a tag byte, so a trained set is never replaced:
a new one gets the next number (the last argument) and a new tag in codec.rs.
Needs python3, sqlite3 (module) and the zstd command line tool.
"""
import json, os, random, sqlite3, subprocess, sys, tempfile

TEXT = {"title", "description", "result", "address", "name", "comment", "note",
        "rating_comment", "reject_reason", "reason", "content", "summary"}


def scrub(v, text=False):
    if isinstance(v, dict):
        return {k: scrub(x, text or k in TEXT) for k, x in v.items()}
    if isinstance(v, list):
        return [scrub(x, text) for x in v]
    if text and isinstance(v, str):
        return ""
    return v


def decode(value, dict_dir, name):
    """A stored value as JSON text: TEXT as is, a tagged zstd BLOB decompressed with the
    dictionary its tag names."""
    if isinstance(value, str):
        return value
    tag, frame = value[0], value[1:]
    dictionary = os.path.join(dict_dir, f"{name}-{tag}.zdict")
    return subprocess.run(["zstd", "-d", "-q", "-c", "-D", dictionary], input=frame,
                          capture_output=True, check=True).stdout.decode()


def main():
    db, out, number = sys.argv[1], sys.argv[2], sys.argv[3]
    conn = sqlite3.connect(db)
    random.seed(int(number))
    sets = {
        "case": "SELECT doc FROM case_docs ORDER BY random() LIMIT 6000",
        "event": "SELECT details FROM events ORDER BY random() LIMIT 20000",
    }
    for name, query in sets.items():
        with tempfile.TemporaryDirectory() as tmp:
            files = []
            for i, (value,) in enumerate(conn.execute(query)):
                text = json.dumps(scrub(json.loads(decode(value, out, name))),
                                  ensure_ascii=False, separators=(",", ":"))
                path = os.path.join(tmp, str(i))
                with open(path, "w") as f:
                    f.write(text)
                files.append(path)
            target = os.path.join(out, f"{name}-{number}.zdict")
            subprocess.run(["zstd", "--train", *files, "-o", target, "--maxdict=32768", "-q"],
                           check=True)
            print(target, os.path.getsize(target), "bytes from", len(files), "samples")


if __name__ == "__main__":
    main()
