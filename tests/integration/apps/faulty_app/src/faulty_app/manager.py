from agilab_panel.runtime import BaseManager, Partition


class FaultyManager(BaseManager):
    def partitions(self) -> list[Partition]:
        return [Partition(label=f"part-{i}", weight=1.0, payload={"index": i}) for i in range(self.args.partitions)]
