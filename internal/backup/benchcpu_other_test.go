//go:build !unix

package backup

import "time"

// processCPU is not measured here: the CPU ratios read NaN.
func processCPU() time.Duration { return 0 }
