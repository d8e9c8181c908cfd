// Package temporalserver embeds a Temporal server with SQLite persistence,
// the way the Temporal CLI's dev server does, so that `slipway server` needs
// no external orchestration service.
//
// The public frontend checks every caller's credential (Access): the
// server's own may do everything, a builder agent's only what the agent of
// its project needs. Temporal's own services talk to each other, and to an
// internal frontend, over TLS with a certificate made in memory at each
// start (internode.go).
//
// It only starts and stops the server and says who may call it; it must
// not register workflows or know what a deployment is beyond the
// builder contract's names (package deploy does).
package temporalserver

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/slipway-ci/slipway/builder"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	"go.temporal.io/server/common/tasktoken"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config configures the embedded server. Zero values get the defaults
// filled in by Start.
type Config struct {
	// DatabaseFile is the SQLite file; it is created (with the schema) when
	// missing. Required.
	DatabaseFile string
	// IP is the address every service binds to. Default 127.0.0.1.
	IP string
	// FrontendPort is the gRPC port clients dial. 0 picks a free port; pass
	// the same port on restart so running agents reconnect.
	FrontendPort int
	// Namespace is created on every start (idempotent). Default
	// builder.DefaultTemporalNamespace, the namespace agents use unless told.
	Namespace string
	// LogFile receives the server's warnings and errors (it is very chatty
	// otherwise). Empty discards them.
	LogFile string
	// ClusterID identifies the cluster; it is stored beside the database so
	// it survives restarts.
	ClusterID string
	// Access checks the callers of the public frontend. Required.
	Access Access
}

// Server is a running embedded Temporal server.
type Server struct {
	srv      temporal.Server
	hostPort string
	logSync  func()
	// internal are the addresses of the services that only accept the
	// internode certificate.
	internal []string
}

// HostPort is the frontend address clients dial.
func (s *Server) HostPort() string { return s.hostPort }

// Stop stops the server. Stop workers and clients first.
func (s *Server) Stop() {
	s.srv.Stop()
	s.logSync()
}

const clusterName = "active"

// Start starts the server and returns once its frontend accepts
// connections.
func Start(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	logger, sync, err := newLogger(cfg.LogFile)
	if err != nil {
		return nil, err
	}
	sqlConf := config.SQL{
		PluginName:        sqliteplugin.PluginName,
		DatabaseName:      cfg.DatabaseFile,
		ConnectAttributes: map[string]string{"mode": "rwc", "busy_timeout": "10000", "journal_mode": "wal", "synchronous": "normal"},
	}
	if err := setUpDatabase(&sqlConf, cfg); err != nil {
		return nil, err
	}
	conf, hosts, err := serverConfig(cfg, &sqlConf)
	if err != nil {
		return nil, err
	}
	internode, err := newInternodeTLS(cfg.IP)
	if err != nil {
		return nil, err
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(slices.Concat(temporal.DefaultServices, []string{string(primitives.InternalFrontendService)})),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dynamicConfig()),
		temporal.WithTLSConfigFactory(internode),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper {
			return claimMapper{creds: cfg.Access.Credentials}
		}),
		temporal.WithAuthorizer(&authorizer{namespace: cfg.Namespace, access: cfg.Access, tokens: tasktoken.NewSerializer()}),
	)
	if err != nil {
		sync()
		return nil, fmt.Errorf("temporal: new server: %w", err)
	}
	if err := srv.Start(); err != nil {
		sync()
		return nil, fmt.Errorf("temporal: start: %w", err)
	}
	hostPort := net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.FrontendPort))
	var internal []string
	for name, h := range hosts {
		if name != primitives.FrontendService {
			internal = append(internal, h.All...)
		}
	}
	return &Server{srv: srv, hostPort: hostPort, logSync: sync, internal: internal}, nil
}

// setDefaults fills in cfg's empty fields but DatabaseFile, which is
// required.
func (cfg *Config) setDefaults() error {
	if cfg.DatabaseFile == "" {
		return fmt.Errorf("temporal: no database file given")
	}
	if cfg.Access.Credentials == nil || cfg.Access.DeploymentProject == nil {
		return fmt.Errorf("temporal: no access checks given (Config.Access)")
	}
	if cfg.IP == "" {
		cfg.IP = "127.0.0.1"
	}
	if cfg.Namespace == "" {
		cfg.Namespace = builder.DefaultTemporalNamespace
	}
	if cfg.ClusterID == "" {
		id, err := clusterID(cfg.DatabaseFile + ".cluster-id")
		if err != nil {
			return err
		}
		cfg.ClusterID = id
	}
	if cfg.FrontendPort == 0 {
		p, err := FreePort(cfg.IP)
		if err != nil {
			return err
		}
		cfg.FrontendPort = p
	}
	return nil
}

// setUpDatabase creates the schema in a new database file, and the
// namespace.
func setUpDatabase(sqlConf *config.SQL, cfg Config) error {
	if _, err := os.Stat(cfg.DatabaseFile); os.IsNotExist(err) {
		if err := sqliteschema.SetupSchema(sqlConf); err != nil {
			return fmt.Errorf("temporal: set up schema in %s: %w", cfg.DatabaseFile, err)
		}
	}
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, cfg.Namespace, false, nil)
	if err != nil {
		return fmt.Errorf("temporal: namespace config: %w", err)
	}
	if err := sqliteschema.CreateNamespaces(sqlConf, ns); err != nil {
		return fmt.Errorf("temporal: create namespace %s: %w", cfg.Namespace, err)
	}
	return nil
}

// serverConfig returns the configuration of a one-host cluster on cfg.IP
// persisting in sqlConf, and its services' addresses. The public frontend
// serves no HTTP API; the other services, the internal frontend among
// them, require the internode certificate.
func serverConfig(cfg Config, sqlConf *config.SQL) (*config.Config, map[primitives.ServiceName]static.Hosts, error) {
	hostPort := net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.FrontendPort))
	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = cfg.IP
	conf.Persistence.DefaultStore = "sqlite-default"
	conf.Persistence.VisibilityStore = "sqlite-default"
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite-default": {SQL: sqlConf}}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             hostPort,
				ClusterID:              cfg.ClusterID,
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]config.Service{}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for _, name := range []primitives.ServiceName{primitives.FrontendService, primitives.InternalFrontendService,
		primitives.HistoryService, primitives.MatchingService, primitives.WorkerService} {
		var svc config.Service
		svc.RPC.BindOnIP = cfg.IP
		svc.RPC.GRPCPort = cfg.FrontendPort
		if name != primitives.FrontendService {
			p, err := FreePort(cfg.IP)
			if err != nil {
				return nil, nil, err
			}
			svc.RPC.GRPCPort = p
		}
		conf.Services[string(name)] = svc
		hosts[name] = static.SingleLocalHost(net.JoinHostPort(cfg.IP, strconv.Itoa(svc.RPC.GRPCPort)))
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	return &conf, hosts, nil
}

// dynamicConfig is the server's dynamic configuration, tuned for one
// small host.
func dynamicConfig() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// Without these, parent → child → activity takes ~340 ms and timers
		// under a second are rounded up to a second (PLATFORM.md).
		dynamicconfig.TransferProcessorMaxPollRPS.Key(): 1000,
		dynamicconfig.TimerProcessorMaxPollRPS.Key():    1000,
		dynamicconfig.TimerProcessorMaxTimeShift.Key():  50 * time.Millisecond,
		// A workflow task that schedules an activity on its own task queue
		// gets the activity back in the same response when the worker has a
		// free slot (the SDKs ask for it by default): one trip through
		// matching fewer for each of DeploymentWorkflow's control
		// activities and the agent's Fetch, Build and Push. Histories are
		// the same as without it.
		dynamicconfig.EnableActivityEagerExecution.Key(): true,
	}
}

func newLogger(path string) (tlog.Logger, func(), error) {
	if path == "" {
		return tlog.NewNoopLogger(), func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("temporal: open log file: %w", err)
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(f), zapcore.ErrorLevel)
	// Temporal ends the process on a fatal error (a port it cannot bind,
	// say): say why on stderr too, not only in the log file.
	fatal := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), zapcore.DPanicLevel)
	zl := zap.New(zapcore.NewTee(core, fatal))
	return tlog.NewZapLogger(zl), func() { _ = zl.Sync(); _ = f.Close() }, nil
}

// clusterID reads the cluster id stored at path, creating it on first use.
func clusterID(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return string(b), nil
	}
	id := uuid.NewString()
	if err := os.WriteFile(path, []byte(id), 0o644); err != nil {
		return "", fmt.Errorf("temporal: store cluster id: %w", err)
	}
	return id, nil
}

// FreePort returns a TCP port on ip that is free now, for a Temporal
// service to bind a moment later. The embedded Temporal server binds its
// ports itself and exits the whole process (logging only to its log file)
// when one is taken by then. A port the kernel picks for "port 0" comes
// from the ephemeral range, which the kernel also hands to every outgoing
// connection: on a busy machine one of those can take the port in that
// moment. So the port is picked below the ephemeral range, where only
// listeners go, and never twice in one process.
func FreePort(ip string) (int, error) {
	lo, hi := freePortRange()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[p] = true
		return p, nil
	}
	// Below the ephemeral range everything is taken: let the kernel pick.
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// freePortRange is where FreePort picks: from 10000 to the start of the
// kernel's ephemeral port range (32768 unless configured otherwise).
func freePortRange() (lo, hi int) {
	lo, hi = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var first, last int
		if n, _ := fmt.Sscan(string(b), &first, &last); n == 2 && first > lo+1000 {
			hi = first
		}
	}
	return lo, hi
}
