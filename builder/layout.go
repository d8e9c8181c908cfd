package builder

import "path/filepath"

// Layout names the files and directories on a machine's volume. It is the
// one place the volume's layout is written down: the agent and every
// machine provider build their paths on a volume from it. The volume is
// only a cache: deleting it makes the next build cold, never wrong.
//
//	VOLUME/                      the project's volume: DATA-DIR/volumes/PROJECT. Mode 0700;
//	                             in rootless mode owned by the project's builder user
//	                             slipway-PROJECT, which nobody else's agent runs as
//	  agent.json                 the agent's configuration (AgentConfig), mode 0600, written
//	                             by the machine provider before each start (Config)
//	  registry-auth.json         the agent's registry credential (containers-auth.json, mode
//	                             0600), written by the agent from agent.json (RegistryAuth)
//	  agent.pid                  the agent's pid (written by the machine provider) (PID)
//	  agent.ready                the agent polls its queue (Ready)
//	  agent.log                  the agent's stdout and stderr (Log)
//	  git/mirror.git             bare git mirror, fetched into incrementally (Mirror)
//	  work/DEPLOYMENT            checkout of one deployment, removed after its push (Work)
//	  work/.prepared/SHA         checkout made at wake of the branch head the push moved,
//	                             moved to work/DEPLOYMENT by that build's Fetch (Prepared)
//	  work/secrets-*             a build's secrets (0600 files), removed after the build
//	  work/dockerfile-*/         a build's rewritten Dockerfile, while it builds
//	  buildah/storage            buildah's storage root (--root): images, layers, build cache
//	                             (Builder; the four below are buildah.ConfigAt(Builder))
//	  buildah/run                buildah's run root (--runroot): locks, mount state; when the
//	                             path is longer than the 50-character limit, a short
//	                             directory /run/slipway-HASH (root) or
//	                             $XDG_RUNTIME_DIR/slipway-HASH (rootless) instead
//	  buildah/tmp                build bundles, image copies, per-build scratch
//	  buildah/tmp/buildah        TMPDIR of builds: RUN --mount=type=cache storage
//	                             (buildah-cache-UID), kept from build to build
//	  buildah/conf               containers.conf written for this volume
//	  podman/                    an older agent's podman 4.3 storage: moved to
//	                             .podman-removing and removed at the agent's start
//	                             (OldStorage, OldStorageTrash)
//	  tmp/                       TMPDIR of the agent and its tools (git, ...) (Tmp)
//	  home/                      rootless only: HOME and XDG_{CONFIG,DATA,CACHE}_HOME;
//	                             .gitconfig; .local/share/containers/cache holds the
//	                             blob-info cache (as root, buildah keeps it in
//	                             /var/lib/containers/cache, shared by all projects) (Home)
//	  inputs/KEY                 image built from identical inputs (reuse without a build) (Inputs)
//	  steps.json                 image of each recorded Dockerfile step key (Steps)
//	  pinned-images.json         images kept for rollbacks (housekeeping) (Pins)
//	  logspool/                  public log lines kept while NATS is unreachable (LogSpool)
//
// Outside the volume, a rootless agent's XDG_RUNTIME_DIR is
// /run/slipway/HASH-OF-VOLUME-PATH (buildah keeps runc's and the network's
// state there; the process provider makes it).
type Layout struct {
	// Root is the volume itself.
	Root string
	// Config is the agent's configuration file (AgentConfig), which the
	// machine provider writes before it starts the agent, and which the
	// agent is started with (slipway-agent agent --config FILE).
	Config string
	// RegistryAuth is the containers-auth.json file with the agent's
	// registry credential (AgentCredentials.Registry), which the agent
	// writes at its start (mode 0600) and gives buildah as
	// REGISTRY_AUTH_FILE.
	RegistryAuth string
	// PID holds the agent's pid, written by the machine provider.
	PID string
	// Ready is the file by which the agent tells the machine provider that
	// it polls its queue. The agent writes its pid in decimal to it,
	// atomically (a temporary file renamed into place), once its worker
	// has started, and removes it when it exits cleanly. The provider
	// measures the wake latency up to the file's modification time, and
	// takes a ready file left behind by an agent that is gone as a sign
	// that the agent crashed.
	Ready string
	// Log receives the agent's stdout and stderr.
	Log string
	// Tmp is the TMPDIR of the agent and of the tools it runs.
	Tmp string
	// Home is a rootless agent's HOME (and XDG base directories).
	Home string
	// Mirror is the bare git mirror of the project's repository.
	Mirror string
	// Work holds one checkout per running deployment.
	Work string
	// Prepared holds the checkout the agent makes at wake of the commit
	// the push brought (gitmirror.Refresh), for the build's Fetch.
	Prepared string
	// Builder holds the builder's (buildah's) storage root, run root, tmp
	// dir and config.
	Builder string
	// Inputs holds one file per input key of a successful build, naming
	// the image it produced.
	Inputs string
	// Steps records the image of each Dockerfile step key.
	Steps string
	// Pins lists, oldest first, the images of the machine's last
	// successful builds, kept so a rollback never rebuilds.
	Pins string
	// LogSpool holds the public log lines NATS could not take yet (NATS
	// away, or the agent exited before it came back); the next publisher
	// sends them first. See publish.Config.SpoolDir.
	LogSpool string
	// OldStorage is an older agent's podman storage, which the agent moves
	// to OldStorageTrash and removes.
	OldStorage, OldStorageTrash string
}

// VolumeLayout returns the layout of the volume at dir.
func VolumeLayout(dir string) Layout {
	return Layout{
		Root:            dir,
		Config:          filepath.Join(dir, "agent.json"),
		RegistryAuth:    filepath.Join(dir, "registry-auth.json"),
		PID:             filepath.Join(dir, "agent.pid"),
		Ready:           filepath.Join(dir, "agent.ready"),
		Log:             filepath.Join(dir, "agent.log"),
		Tmp:             filepath.Join(dir, "tmp"),
		Home:            filepath.Join(dir, "home"),
		Mirror:          filepath.Join(dir, "git", "mirror.git"),
		Work:            filepath.Join(dir, "work"),
		Prepared:        filepath.Join(dir, "work", ".prepared"),
		Builder:         filepath.Join(dir, "buildah"),
		Inputs:          filepath.Join(dir, "inputs"),
		Steps:           filepath.Join(dir, "steps.json"),
		Pins:            filepath.Join(dir, "pinned-images.json"),
		LogSpool:        filepath.Join(dir, "logspool"),
		OldStorage:      filepath.Join(dir, "podman"),
		OldStorageTrash: filepath.Join(dir, ".podman-removing"),
	}
}
