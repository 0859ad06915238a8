"""The memory budget of pixel jobs: jobs that fit run together, the others wait in the order
they asked, one larger than the whole budget runs alone, and a cancelled waiter gives back
its turn."""

import anyio

from pacs.pixels.memory import MemoryBudget


class Jobs:
    """Jobs holding parts of one budget until each is let go; `running` in start order."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.running: list[str] = []
        self.done: dict[str, anyio.Event] = {}

    async def hold(self, name: str, size: int) -> None:
        self.done[name] = anyio.Event()
        async with self.budget.hold(size):
            self.running.append(name)
            await self.done[name].wait()
        self.running.remove(name)

    async def finish(self, name: str) -> None:
        self.done[name].set()
        await anyio.wait_all_tasks_blocked()


async def test_waiting_jobs_go_in_order_even_when_a_later_one_fits() -> None:
    jobs = Jobs(MemoryBudget(100))
    async with anyio.create_task_group() as group:
        for name, size in [("a", 60), ("b", 50), ("c", 10)]:
            group.start_soon(jobs.hold, name, size)
            await anyio.wait_all_tasks_blocked()
        assert jobs.running == ["a"]  # c would fit beside a, but b asked first
        await jobs.finish("a")
        assert jobs.running == ["b", "c"]
        await jobs.finish("b")
        await jobs.finish("c")


async def test_a_job_larger_than_the_budget_runs_alone() -> None:
    jobs = Jobs(MemoryBudget(100))
    async with anyio.create_task_group() as group:
        for name, size in [("small", 10), ("huge", 500), ("after", 1)]:
            group.start_soon(jobs.hold, name, size)
            await anyio.wait_all_tasks_blocked()
        assert jobs.running == ["small"]
        await jobs.finish("small")
        assert jobs.running == ["huge"]
        await jobs.finish("huge")
        assert jobs.running == ["after"]
        await jobs.finish("after")


async def test_a_cancelled_waiter_gives_back_its_turn() -> None:
    jobs = Jobs(MemoryBudget(100))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(jobs.hold, "a", 100)
            await anyio.wait_all_tasks_blocked()
            with anyio.move_on_after(0.01):
                await jobs.hold("impatient", 100)
            group.start_soon(jobs.hold, "b", 100)
            await jobs.finish("a")
            assert jobs.running == ["b"]  # not blocked by the cancelled turn, nor short of bytes
            await jobs.finish("b")
