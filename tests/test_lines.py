"""Output of a subprocess read line by line, whatever the length of a line."""
from __future__ import annotations

import asyncio
import sys

from agilab_panel.events import EventBus
from agilab_panel.execute.cluster import _Tail
from agilab_panel.execute.common import MAX_LINE, read_lines

SCRIPT = ("import sys; sys.stdout.write('a' * 100_000 + '\\n' + 'é中🙂' * 400_000 + '\\n\\n' + 'tail'); "
          "sys.stdout.flush()")


async def test_lines_past_the_pipe_reader_limit_arrive_whole_or_in_pieces_cut_between_characters():
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SCRIPT, stdout=asyncio.subprocess.PIPE)
    lines = [line async for line in read_lines(proc.stdout)]
    assert await proc.wait() == 0
    assert lines[0] == b"a" * 100_000  # over the 64 kB default limit of a reader: whole
    pieces = lines[1:-2]
    assert len(pieces) == 4 and all(len(piece) <= MAX_LINE for piece in pieces)
    assert "".join(piece.decode() for piece in pieces) == "é中🙂" * 400_000  # each piece decodes on its own
    assert lines[-2:] == [b"", b"tail"]  # an empty line, and a last one without its newline


def test_a_followed_log_line_that_does_not_end_is_passed_on_in_pieces(tmp_path):
    log = tmp_path / "127.0.0.1-0.log"
    log.write_bytes("é中🙂".encode() * 500_000)  # 4.5 MB and no newline: a worker printing without end
    bus = EventBus()
    tail = _Tail(log, "worker", "127.0.0.1-0")
    tail.poll(bus)
    texts = [line.text for line in bus.logs()]
    assert len(texts) == 4 and all(len(text.encode()) <= MAX_LINE for text in texts)
    assert len(tail.partial) <= MAX_LINE  # what is kept waiting for the end of the line stays bounded
    assert "".join(texts) + tail.partial.decode() == "é中🙂" * 500_000
