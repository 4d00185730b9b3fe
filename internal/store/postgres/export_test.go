package postgres

// CommitStats reports how many group-commit transactions committed and
// how many sends they held, so tests can see group commit at work.
func CommitStats(s *Store) (commits, sends int64) {
	return s.b.commits.Load(), s.b.committedSends.Load()
}
