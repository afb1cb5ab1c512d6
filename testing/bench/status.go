package bench

import (
	"context"
	"fmt"
)

// statusRows is item 3: the dashboard, read from the jobs' records,
// against asking borg itself (borg info and borg list on every repo of
// the host; the bench's server has one).
func statusRows(ctx context.Context, s *Site, runs int) ([]Row, error) {
	kit := s.borgkit("--config", s.JobsConfig(), "status", "--host", hostKit, "--state-dir", s.path("state", hostKit))
	borg := func(ctx context.Context) (Result, error) {
		var total Result
		for _, sub := range []string{"info", "list"} {
			res, err := s.borg(s.KitPass(), sub, s.KitRepo()).Run(ctx)
			if err != nil {
				return total, err
			}
			total.Seconds += res.Seconds
		}
		return total, nil
	}
	k, b, err := pairs(ctx, runs, kit.Run, borg)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return []Row{timeRow("3", "dashboard: `borg info` + `borg list` on every repo / `borgkit status`", k, b, Goal{">=", 50})}, nil
}

// startupRows is item 7: how long each program takes to start and say its
// version.
func startupRows(ctx context.Context, s *Site, runs int) ([]Row, error) {
	kit := s.borgkit("version")
	var rows []Row
	for _, peer := range [][]string{{"borg", "--version"}, {"borgmatic", "--version"}} {
		k, p, err := pairs(ctx, runs, kit.Run, Cmd{Argv: peer, Env: s.Env}.Run)
		if err != nil {
			return nil, fmt.Errorf("start-up: %w", err)
		}
		rows = append(rows, timeRow("7", fmt.Sprintf("start-up: `%s %s` / `borgkit version`", peer[0], peer[1]), k, p, Goal{}))
	}
	return rows, nil
}
