package dns_test

import (
	"context"
	"log"

	failoverdns "github.com/tandemhost/tandem/failover/dns"
	"go.uber.org/zap"
)

// The [failover.dns] settings with update = "ns1.example.net:53": what
// `tandem check` and the failover runner do with them.
func Example_updater() {
	ctx := context.Background()
	secret, err := failoverdns.ReadSecretFile("/etc/tandem/tsig.secret") // tsig_secret_file
	if err != nil {
		log.Fatal(err) // e.g. "... is readable by everyone (mode 0644): run chmod 600 ..."
	}
	u, err := failoverdns.NewUpdater(failoverdns.UpdaterOptions{
		Server:        "ns1.example.net:53",                           // update
		Zone:          "example.test.",                                // zone
		Names:         []string{"www.example.test.", "example.test."}, // names
		TTL:           30,                                             // ttl
		TSIGKey:       "tandem-key.",                                  // tsig_key
		TSIGSecret:    secret.Secret,
		TSIGAlgorithm: secret.Algorithm, // "" for a bare secret: hmac-sha256
		Log:           zap.NewNop(),
	})
	if err != nil {
		log.Fatal(err)
	}
	// tandem check: may we update, without changing anything?
	if err := u.Probe(ctx); err != nil {
		log.Fatal(err) // e.g. "... BADSIG: the secret in tsig_secret_file does not match ..."
	}
	// The runner, on promotion (roundrobin: every healthy node's address).
	if err := u.Point(ctx, []string{"198.51.100.1"}); err != nil {
		log.Print(err)
	}
}

// The [failover.dns] settings with serve = "0.0.0.0:53".
func Example_server() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := failoverdns.NewServer(failoverdns.ServerOptions{
		Addr:  "0.0.0.0:53",
		Zone:  "example.test.",
		Names: []string{"www.example.test.", "example.test."},
		TTL:   30,
		NS:    []string{"ns1.example.test.", "ns2.example.test."},
		Glue: map[string][]string{ // the two nodes answer for the zone
			"ns1.example.test.": {"198.51.100.1"},
			"ns2.example.test.": {"203.0.113.7"},
		},
		Log: zap.NewNop(),
	})
	if err != nil {
		log.Fatal(err)
	}
	go s.Serve(ctx) // returns nil when ctx ends
	if err := s.Point(ctx, []string{"198.51.100.1"}); err != nil {
		log.Print(err)
	}
}
