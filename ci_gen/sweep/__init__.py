"""The `sweep` component's jobs: a grid of params run as `parallel: matrix` cells (grid, cell),
the leaderboard of their metrics (leaderboard), and the follow-up merge request that applies
the best cell's params (apply).
"""
