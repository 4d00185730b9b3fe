package sqlite

// CommitStats reports how many transactions the writer committed and how
// many writes they held, so tests can see group commit at work.
func CommitStats(s *Store) (commits, ops int64) {
	return s.w.commits.Load(), s.w.committedOps.Load()
}
