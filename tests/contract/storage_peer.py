"""A second process driving a storage: ``python -m tests.contract.storage_peer JOB``.

``JOB`` is JSON: ``{"spec": StorageSpec, "upload_id": str, "data": path,
"steps": [...]}``. The peer builds the storage of ``spec`` (its own clients,
its own view of the SQLite store), loads the upload's record and runs the
steps in order, printing one JSON line per step:

* ``{"do": "durable"}`` → ``{"durable": n}``: ``durable_offset`` of the record;
* ``{"do": "append", "end": n}`` → ``{"offset": n}``: writes bytes
  ``offset..end`` of the file ``data`` at the record's offset, closes the
  writer and commits the offset;
* ``{"do": "finish"}`` → ``{"finished": true}``;
* ``{"do": "sha256"}`` → ``{"sha256": hex}`` of the bytes read back;
* ``{"do": "hang", "end": n, "settle": s, "splice": bool}`` → ``{"written": w,
  "spliced": z, "publishable": p}``: writes up to ``end`` (with ``splice``:
  sends the bytes through a socket pair and splices them,
  :meth:`~tests.contract.storage_backends.Harness.splice`), waits until ``s``
  bytes are publishable (:func:`~tests.contract.storage_backends.publishable`)
  and never closes the writer; the test then kills the process (it exits by
  itself after :data:`HANG_LIMIT` seconds).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.contract.storage_backends import Harness, SocketBody, StorageSpec, publishable, sha256

HANG_LIMIT = 60.0


def _say(**values: Any) -> None:
    print(json.dumps(values), flush=True)


async def run(job: dict[str, Any]) -> None:
    harness = await Harness.open(StorageSpec(**job["spec"]))
    data = Path(job["data"]).read_bytes() if job.get("data") else b""
    try:
        for step in job["steps"]:
            info = await harness.load(job["upload_id"])
            if step["do"] == "durable":
                _say(durable=await harness.storage.durable_offset(info))
            elif step["do"] == "append":
                info = await harness.append(info, data[info.offset : step["end"]])
                _say(offset=info.offset)
            elif step["do"] == "finish":
                await harness.finish(info)
                _say(finished=True)
            elif step["do"] == "sha256":
                _say(sha256=sha256(await harness.read(info)))
            elif step["do"] == "hang":
                writer = await harness.storage.open_writer(info)
                chunk = data[info.offset : step["end"]]
                spliced = 0
                if step.get("splice"):
                    body = SocketBody()  # left open: the process is killed
                    sending = asyncio.ensure_future(body.send(chunk))
                    done = await harness.splice(writer, body, len(chunk), upload_id=info.id)
                    await sending
                    assert done.taken == len(chunk), done
                    spliced = done.spliced
                else:
                    await harness.write(writer, chunk, upload_id=info.id)
                published = await publishable(writer, len(chunk), step.get("settle", 0))
                _say(written=len(chunk), spliced=spliced, publishable=published)
                await asyncio.sleep(HANG_LIMIT)
            else:
                raise ValueError(f"unknown step {step!r}")
    finally:
        await harness.close()


if __name__ == "__main__":
    asyncio.run(run(json.loads(sys.argv[1])))
