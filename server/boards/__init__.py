"""Leaderboards: ranking (public/private boards, finals, ties, CSV) and the board cache readers get."""
