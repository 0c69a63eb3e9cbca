import time

from agilab_panel.runtime import BaseManager, Partition

MANIFEST = "manifest.txt"


class FaultyManager(BaseManager):
    def recipe(self) -> str:
        return f"{self.args.prepare_files} files, {self.args.prepare_seconds} s each"

    def prepare(self) -> None:
        """Write ``prepare_files`` input files one at a time, after removing those of other args."""
        if not self.args.prepare_files:
            return
        manifest = self.data_in / MANIFEST
        if manifest.is_file() and manifest.read_text() == self.recipe():
            return
        self.data_in.mkdir(parents=True, exist_ok=True)
        manifest.unlink(missing_ok=True)
        for old in self.data_in.glob("input-*.txt"):
            old.unlink()
        for i in range(self.args.prepare_files):
            time.sleep(self.args.prepare_seconds)
            (self.data_in / f"input-{i:03d}.txt").write_text(self.recipe())
        manifest.write_text(self.recipe())

    def partitions(self) -> list[Partition]:
        for i in range(self.args.prepare_files):  # inputs of other args would mix two datasets
            name = f"input-{i:03d}.txt"
            if (self.data_in / name).read_text() != self.recipe():
                raise ValueError(f"{name} was written for other args than {self.recipe()!r}")
        return [Partition(label=f"part-{i}", weight=1.0, payload={"index": i}) for i in range(self.args.partitions)]
