import pandas as pd

from agilab_panel.runtime import BaseWorker


def sum_squares(start: int, stop: int) -> int:
    return sum(i * i for i in range(start, stop))


class MinimalWorker(BaseWorker):
    def work_init(self) -> None:
        self.kernel = self.compiled("minimal_kernel").sum_squares if self.use_cython else sum_squares

    def work_pool(self, payload: dict) -> pd.DataFrame:
        start, stop = payload["start"], payload["stop"]
        return pd.DataFrame({"start": [start], "stop": [stop], "sum_squares": [str(self.kernel(start, stop))]})
