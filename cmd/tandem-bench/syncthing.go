package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tandemhost/tandem/internal/pairsetup"
)

// syncthingTool is two Syncthing instances, one on A and one on B, each
// dialing the other through a proxy; global and local discovery, relays,
// NAT traversal, usage and crash reporting are off, the GUI/API listens on
// loopback. delayS is the folder's fsWatcherDelayS (Syncthing's default is
// 10 s).
type syncthingTool struct {
	px     proxies
	delayS int
	dir    string
	inst   [2]*stInstance
}

type stInstance struct {
	home, folder      string
	id                string
	listen, gui, dial string
	p                 *proc
}

func (t *syncthingTool) column() string {
	if t.delayS == 10 {
		return "Syncthing, default delay 10 s"
	}
	return fmt.Sprintf("Syncthing, watcher delay %d s", t.delayS)
}
func (t *syncthingTool) twoWay() bool                      { return true }
func (t *syncthingTool) fixedDelay() time.Duration         { return time.Duration(t.delayS) * time.Second }
func (t *syncthingTool) wire() int64                       { return t.px.wire() }
func (t *syncthingTool) after(context.Context, bool) error { return nil }

func (t *syncthingTool) setup(ctx context.Context, a, b string) error {
	t.dir = filepath.Join(filepath.Dir(a), "syncthing")
	for i, folder := range []string{a, b} {
		in := &stInstance{home: filepath.Join(t.dir, []string{"a", "b"}[i]), folder: folder}
		out, err := exec.CommandContext(ctx, "syncthing", "generate", "--home="+in.home, "--no-default-folder").CombinedOutput()
		if err != nil {
			return fmt.Errorf("syncthing generate: %w: %s", err, out)
		}
		out, err = exec.CommandContext(ctx, "syncthing", "serve", "--home="+in.home, "--device-id").Output()
		if err != nil {
			return fmt.Errorf("syncthing --device-id: %w", err)
		}
		in.id = strings.TrimSpace(string(out))
		if in.listen, err = pairsetup.FreeLoopbackAddr(); err != nil {
			return err
		}
		if in.gui, err = pairsetup.FreeLoopbackAddr(); err != nil {
			return err
		}
		if in.dial, err = t.px.add(in.listen); err != nil {
			return err
		}
		// The folder marker Syncthing wants before it syncs a folder.
		if err := os.MkdirAll(filepath.Join(folder, ".stfolder"), 0o755); err != nil {
			return err
		}
		t.inst[i] = in
	}
	for i, in := range t.inst {
		peer := t.inst[1-i]
		// Only A dials B: when both dial at once, each side drops the
		// other's connection and, through the proxy's latency, they can
		// go on doing so for minutes.
		peerAddr := "tcp://" + peer.dial
		if i == 1 {
			peerAddr = "dynamic" // with discovery off: never dialed
		}
		key := make([]byte, 16)
		rand.Read(key)
		conf := fmt.Sprintf(`<configuration version="36">
    <folder id="bench" label="bench" path="%s" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="true" fsWatcherDelayS="%d" ignorePerms="false" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="%s"></device>
        <device id="%s"></device>
    </folder>
    <device id="%s" name="self" compression="metadata">
        <address>dynamic</address>
    </device>
    <device id="%s" name="peer" compression="metadata">
        <address>%s</address>
    </device>
    <gui enabled="true" tls="false">
        <address>%s</address>
        <apikey>%s</apikey>
    </gui>
    <options>
        <listenAddress>tcp://%s</listenAddress>
        <globalAnnounceEnabled>false</globalAnnounceEnabled>
        <localAnnounceEnabled>false</localAnnounceEnabled>
        <relaysEnabled>false</relaysEnabled>
        <natEnabled>false</natEnabled>
        <urAccepted>-1</urAccepted>
        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
        <crashReportingEnabled>false</crashReportingEnabled>
        <startBrowser>false</startBrowser>
    </options>
</configuration>
`, in.folder, t.delayS, in.id, peer.id, in.id, peer.id, peerAddr, in.gui, hex.EncodeToString(key), in.listen)
		if err := os.WriteFile(filepath.Join(in.home, "config.xml"), []byte(conf), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (t *syncthingTool) launch(ctx context.Context) error {
	for _, in := range t.inst {
		p, err := startProc("syncthing", filepath.Join(in.home, "syncthing.log"),
			[]string{"STNODEFAULTFOLDER=1", "STNOUPGRADE=1", "STNORESTART=1"},
			"syncthing", "serve", "--home="+in.home, "--no-browser", "--no-restart", "--no-upgrade")
		if err != nil {
			return err
		}
		in.p = p
	}
	return nil
}

func (t *syncthingTool) roots() []int {
	var pids []int
	for _, in := range t.inst {
		pids = append(pids, in.p.cmd.Process.Pid)
	}
	return pids
}

func (t *syncthingTool) stop() {
	for _, in := range t.inst {
		if in != nil && in.p != nil {
			in.p.stop(5 * time.Second)
			in.p = nil
		}
	}
	t.px.close()
}
