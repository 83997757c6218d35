package main

// DidNotRun is a contestant that could not be fetched or built here. It is
// listed in every report with the exact error, never silently dropped.
type DidNotRun struct {
	Name    string   `json:"name"`
	Modules []string `json:"modules"`
	Command string   `json:"command"`
	Error   string   `json:"error"`
}

// didNotRun lists the peers whose file was removed because their module
// could not be fetched or built (none now: hallgren/eventsourcing, listed
// here while the module proxy refused it, runs as hallgren/es-sql). The
// module proxy's address in an error text is written as <GOPROXY>.
var didNotRun = []DidNotRun{}
