// Package sshdtest starts a real OpenSSH server (Debian's /usr/sbin/sshd)
// for tests: on a free loopback port, as the current user, with a new host
// key and an authorized_keys file holding a new operator key. It owns
// nothing outside the test's temp dir, except that sshd run as root needs
// its privilege separation dir /run/sshd, which it creates if missing (as
// Debian's ssh.service does at boot).
//
// Without sshd the test is skipped, or fails when TANDEM_REQUIRE_INTEGRATION
// is set.
package sshdtest
