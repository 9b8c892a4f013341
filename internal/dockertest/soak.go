package dockertest

import "os"

// SoakEnv is the environment variable that selects the long variants of
// the reliability tests (make soak sets it to 1).
const SoakEnv = "SOCKPIN_SOAK"

// Soak reports whether the long variants of the reliability tests are
// asked for: longer load, more repetitions. make test runs the short ones.
func Soak() bool {
	return os.Getenv(SoakEnv) == "1"
}
