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
// could not be fetched or built. The module proxy's address in the error
// text is written as <GOPROXY> (the project's notes name no registry host).
var didNotRun = []DidNotRun{
	{
		Name: "hallgren/eventsourcing (SQL event store)",
		Modules: []string{
			"github.com/hallgren/eventsourcing",
			"github.com/hallgren/eventsourcing/core",
			"github.com/hallgren/eventsourcing/eventstore/sql",
		},
		Command: "cd bench && go get github.com/hallgren/eventsourcing@latest " +
			"(and go list -m -versions for .../core and .../eventstore/sql, which fail the same way)",
		Error: "go: github.com/hallgren/eventsourcing@latest: module github.com/hallgren/eventsourcing: " +
			"reading <GOPROXY>/github.com/hallgren/eventsourcing/@v/list: 403 Forbidden\n" +
			"\tserver response: This module version is not available.\n" +
			"go: module github.com/hallgren/eventsourcing/eventstore/sql: " +
			"reading <GOPROXY>/github.com/hallgren/eventsourcing/eventstore/sql/@v/list: 403 Forbidden\n" +
			"\tserver response: This module version is not available.\n" +
			"go: module github.com/hallgren/eventsourcing/core: " +
			"reading <GOPROXY>/github.com/hallgren/eventsourcing/core/@v/list: 403 Forbidden\n" +
			"\tserver response: This module version is not available.",
	},
}
