package deploy

// The unit tests run the real systemd-analyze (offline modes: PID 1 need not
// be systemd) on rendered units.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` score we accept.
const maxExposure = 3.0

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("TANDEM_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("systemd-analyze is missing and TANDEM_REQUIRE_INTEGRATION is set: %v", err)
		}
		t.Skip("systemd-analyze is not installed (apt-get install systemd); the unit is not verified")
	}
	return path
}

// writeUnit renders o into dir/tandem.service with ExecStart pointing at a
// real executable (verify insists that it exists).
func writeUnit(t *testing.T, dir string, o UnitOptions) string {
	t.Helper()
	if o.Binary == "" {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		o.Binary = self
	}
	text, err := RenderUnit(o)
	if err != nil {
		t.Fatalf("RenderUnit(%+v): %v", o, err)
	}
	path := filepath.Join(dir, UnitName)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var exposureRE = regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)

// verifyUnit runs systemd-analyze verify; anything on stderr is a failure.
func verifyUnit(analyze, unit string) error {
	cmd := exec.Command(analyze, "verify", unit)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		return fmt.Errorf("systemd-analyze verify %s: err %v, stderr:\n%s", unit, err, stderr.String())
	}
	return nil
}

// unitExposure returns the offline `systemd-analyze security` score.
func unitExposure(analyze, unit string) (float64, error) {
	out, err := exec.Command(analyze, "security", "--offline=true", unit).CombinedOutput()
	m := exposureRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("systemd-analyze security --offline=true: %v, no score in:\n%s", err, out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func checkUnitFile(t *testing.T, analyze, unit string) {
	t.Helper()
	if err := verifyUnit(analyze, unit); err != nil {
		t.Error(err)
	}
	score, err := unitExposure(analyze, unit)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security: exposure %.1f", score)
	if score > maxExposure {
		t.Errorf("exposure level = %.1f, want <= %.1f", score, maxExposure)
	}
}

// TestUnitCheckCatchesBadUnits proves the checks above can fail: a typo, a
// missing binary and a unit without hardening are all caught.
func TestUnitCheckCatchesBadUnits(t *testing.T) {
	analyze := systemdAnalyze(t)
	dir := t.TempDir()
	good := writeUnit(t, dir, UnitOptions{})
	text, _ := os.ReadFile(good)
	typo := filepath.Join(dir, "typo.service")
	os.WriteFile(typo, bytes.Replace(text, []byte("ProtectSystem=strict"), []byte("ProtectSytem=strict"), 1), 0o644)
	if err := verifyUnit(analyze, typo); err == nil {
		t.Error("verifyUnit(unit with a typo) = nil, want an error")
	}
	missing := filepath.Join(dir, "missing.service")
	os.WriteFile(missing, []byte("[Service]\nExecStart=/nonexistent/tandem run\n"), 0o644)
	if err := verifyUnit(analyze, missing); err == nil {
		t.Error("verifyUnit(unit whose binary is missing) = nil, want an error")
	}
	if score, err := unitExposure(analyze, missing); err != nil || score <= maxExposure {
		t.Errorf("unitExposure(bare unit) = %.1f, %v; want above %.1f", score, err, maxExposure)
	}
}

func TestUnitPassesVerifyAndSecurity(t *testing.T) {
	analyze := systemdAnalyze(t)
	for name, o := range map[string]UnitOptions{
		"defaults":    {},
		"from config": {Config: "/etc/tandem/alpha.toml", ReadWritePaths: []string{"/srv/www", "/var/lib/tandem", "/var/backups/tandem", "/srv/www"}},
		"state only":  {ReadWritePaths: []string{"/var/lib/tandem"}},
	} {
		t.Run(name, func(t *testing.T) {
			checkUnitFile(t, analyze, writeUnit(t, t.TempDir(), o))
		})
	}
}

func TestRenderUnit(t *testing.T) {
	text, err := RenderUnit(UnitOptions{Binary: "/opt/t/tandem", Config: "/etc/t/a.toml", ReadWritePaths: []string{"/srv/www", "/var/lib/tandem", "/data/50%"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nExecStart=/opt/t/tandem run -c /etc/t/a.toml\n",
		"\nReadWritePaths=-/srv/www -/data/50%%\n",
		"\nType=notify\n", "\nWatchdogSec=", "\nStateDirectory=tandem\n", "\nProtectSystem=strict\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("RenderUnit lacks %q:\n%s", want, text)
		}
	}
	if strings.Count(text, "ExecStart=") != 1 || strings.Count(text, "ReadWritePaths=") != 1 {
		t.Errorf("RenderUnit has ExecStart= or ReadWritePaths= more than once:\n%s", text)
	}
	def, _ := RenderUnit(UnitOptions{})
	if def != unitTemplate {
		t.Error("RenderUnit with no options differs from deploy/tandem.service")
	}
	for _, bad := range []UnitOptions{
		{Binary: "relative/tandem"},
		{ReadWritePaths: []string{"/srv/my www"}},
		{Config: `/etc/"x".toml`},
	} {
		if _, err := RenderUnit(bad); err == nil {
			t.Errorf("RenderUnit(%+v) = nil error, want one", bad)
		}
	}
}
