from agilab_panel.runtime import BaseManager, Partition


class MinimalManager(BaseManager):
    def partitions(self) -> list[Partition]:
        n, size = self.args.partitions, self.args.size
        return [
            Partition(label=f"range-{i:04d}", weight=float(size), payload={"start": i * size, "stop": (i + 1) * size})
            for i in range(n)
        ]
