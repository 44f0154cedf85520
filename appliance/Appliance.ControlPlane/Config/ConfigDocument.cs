using System.Text.Json.Serialization;
using Isthmus.DataPlane.Programming;

namespace Isthmus.ControlPlane.Config;

/// <summary>
/// The one configuration document: data-plane settings, the data-plane program (ports, bridge domains
/// and every section later issues add to <see cref="DataPlaneProgram"/>), users and API tokens.
/// Immutable; what the store keeps in every revision.
/// </summary>
/// <remarks>
/// On the wire the program's sections sit at the top level beside the control plane's own keys
/// (<c>{ "dataPlane", "ports", "bridgeDomains", ..., "users", "apiTokens" }</c>): see
/// <see cref="ConfigDocumentJson"/>, which splits them off by key, so a new program section needs no
/// change here.
/// </remarks>
public sealed record ConfigDocument
{
    public DataPlaneSettings DataPlane { get; init; } = new();

    public DataPlaneProgram Program { get; init; } = new();

    public IReadOnlyList<UserSpec> Users { get; init; } = [];

    public IReadOnlyList<ApiTokenSpec> ApiTokens { get; init; } = [];

    /// <summary>The BGP speaker; null = none.</summary>
    public BgpSettings? Bgp { get; init; }

    /// <summary>Move detection and reactions; null = off.</summary>
    public MobilitySettings? Mobility { get; init; }
}

/// <summary>Where and how the data plane runs. Fixed while it runs: changing it needs a restart.</summary>
public sealed record DataPlaneSettings
{
    /// <summary>Network namespace holding the data-plane interfaces (the lab's "ist-app"); null = this one.</summary>
    public string? Netns { get; init; }

    /// <summary>Packet buffers in the worker's pool.</summary>
    public int PoolSize { get; init; } = 16384;

    /// <summary>Frames per receive system call.</summary>
    public int RxBatch { get; init; } = 64;

    /// <summary>
    /// VXLAN ports send toward VTEPs with a resolved next hop as raw frames on the underlay interface
    /// (pre-built outer headers, AF_PACKET, qdisc bypass) instead of through the UDP socket. false = always
    /// the UDP socket.
    /// </summary>
    public bool RawVxlanTransmit { get; init; } = true;

    public const string VxlanTransmitRaw = "raw";
    public const string VxlanTransmitUdpGso = "udpGso";

    /// <summary>
    /// How VXLAN ports send. "raw": as <see cref="RawVxlanTransmit"/> and <see cref="XdpTransmit"/> say
    /// (outer headers written by the appliance, one frame per AF_XDP or AF_PACKET send; the UDP socket for an
    /// unresolved next hop). "udpGso" (the default since session 11): through the kernel's UDP stack with UDP GSO (UDP_SEGMENT, Linux 4.18+): a run of
    /// same-size datagrams to one VTEP and source port is one sendmsg that the kernel cuts into datagrams at the device
    /// (or the device does: tx-udp-segmentation), so on a veth the receiver's softirq runs once per run instead of once
    /// per frame. The outer source port is one of 16 ports (49152 + k·1024, the first free), picked by the flow's
    /// entropy hash (RFC 7348 §5); the UDP checksum is computed (GSO needs one); the kernel routes and ARPs;
    /// rawVxlanTransmit is ignored. The UDP socket on the port's udpPort still receives. Why the default: the same
    /// zero-loss rate as raw in session 11's A/B (both at the generator's ceiling) for 28-38 % less of the worker's CPU per
    /// VXLAN-bound packet (docs/benchmarks.md "Session 11: wire").
    /// </summary>
    public string VxlanTransmit { get; init; } = VxlanTransmitUdpGso;

    /// <summary>
    /// A CPU for the data-plane worker alone: the worker is pinned to it and every other thread of the
    /// process is kept off it. null = no pinning (the scheduler decides).
    /// </summary>
    public int? WorkerCpu { get; init; }

    /// <summary>
    /// How the worker waits for frames. "interrupt" (the default): it spins briefly, then sleeps in poll() until a
    /// port is readable. "busy": it never sleeps, it keeps polling its ports (poll(0)) like VPP's or DPDK's polling
    /// mode, so a frame is seen without a wake-up and its CPU never idles; this costs one CPU all the time. With
    /// <see cref="WorkerCpu"/> set, the mobility loop and the BGP session loops share the worker's CPU.
    /// </summary>
    public string PollMode { get; init; } = "interrupt";

    /// <summary>
    /// Access ports receive through AF_XDP (an XDP program redirecting to an AF_XDP socket, copy mode)
    /// instead of AF_PACKET: a frame the worker has no room for is dropped in the driver's XDP hook. A peer's
    /// partial TCP/UDP checksums are finished by the port; veth segments GSO before the hook. On by default;
    /// false = AF_PACKET recvmmsg. If the set-up fails the port uses AF_PACKET and the reason is logged.
    /// </summary>
    public bool XdpReceive { get; init; } = true;

    /// <summary>
    /// Access ports transmit through AF_XDP (a TX ring on the same socket as <see cref="XdpReceive"/>, copy
    /// mode) instead of sendmmsg on AF_PACKET, and so do raw VXLAN frames on the underlay interface (a
    /// transmit-only AF_XDP socket). On by default; false = AF_PACKET.
    /// </summary>
    public bool XdpTransmit { get; init; } = true;

    /// <summary>
    /// VXLAN ports receive their datagrams through AF_XDP on the interface holding the underlay address (an
    /// XDP program matching IPv4 UDP to that address and port; the rest passes to the kernel). false = the
    /// UDP socket alone. On by default.
    /// </summary>
    public bool XdpVxlanReceive { get; init; } = true;

    /// <summary>
    /// Frames each AF_XDP receive ring holds (RX ring, fill ring and UMEM chunks alike; a power of two, 64 to 65536):
    /// the burst a port absorbs while the worker is busy, e.g. 10,000 RARPs of a site failover in ~0.1 s. Each frame is
    /// a 2 KiB UMEM chunk: 32768 (the default) = 64 MiB per port receiving through AF_XDP.
    /// </summary>
    public int XdpRingFrames { get; init; } = Isthmus.DataPlane.Io.XdpSocket.DefaultFrames;

    /// <summary>
    /// A CPU latency request (PM QoS, µs) held for the appliance's lifetime: the cpuidle governor then only uses idle
    /// states that wake within this time; 0 = CPUs never halt (they poll when idle), so a RARP wakes the worker and the
    /// mobility loop without a halted-vCPU round trip (issue 6's latency). Costs power / host CPU while idle, as tuned's
    /// network-latency profile. null (the default) = no request. Applied at start and by a commit (the one data-plane setting that changes without a restart); if the device
    /// (<c>/dev/cpu_dma_latency</c>) is absent or not permitted the appliance runs without it (status and metrics say so).
    /// </summary>
    public int? CpuIdleLatencyUs { get; init; }

    /// <summary>
    /// SCHED_FIFO priority (1-99) for the latency chain's threads, which block when idle: the worker in
    /// <c>pollMode: "interrupt"</c>, and the mobility / BGP event loop (at this priority instead of 1). A RARP then
    /// wakes the worker, and the worker the loop, ahead of every ordinary task on the CPU (as ptp4l or bfdd are
    /// deployed). Refused with <c>pollMode: "busy"</c> (a thread that never sleeps would starve its CPU). null (the
    /// default) = the worker stays an ordinary thread and the loop runs at SCHED_FIFO 1 when permitted. Needs
    /// CAP_SYS_NICE: if refused, the thread runs as before (status and metrics say so). The kernel's real-time
    /// throttling (95 % of each second by default) still bounds a runaway.
    /// </summary>
    public int? RealtimePriority { get; init; }

    /// <summary>
    /// Where the mobility / BGP event loop runs. null or "scheduler" (the default): where the scheduler puts it (with
    /// <see cref="RealtimePriority"/> the worker holds its own CPU, so the worker's ring after a RARP's first GARP wakes the
    /// loop on the other one). "aboveWorker": the worker pins itself to the last CPU and the loop runs on that CPU at
    /// <see cref="RealtimePriority"/> + 1, so the ring preempts the worker on its CPU at once (issue 6's UPDATE latency);
    /// after more than 2 ms of continuous work (a failover) the loop leaves that CPU, one priority below the worker, and
    /// comes back when it next goes idle at least 100 ms later (counted: isthmus_mobility_loop_demotions_total). Needs
    /// <see cref="RealtimePriority"/> 2-98 in interrupt mode, and no <see cref="WorkerCpu"/> (whose sweep keeps every other
    /// thread off the worker's CPU). Fixed while running.
    /// </summary>
    public string? LoopPlacement { get; init; }

    /// <summary>
    /// The data-plane worker thread's nice value (-20 to 19; fixed while running). null (the default) = -20 for a worker
    /// with a CPU of its own (<see cref="WorkerCpu"/> set) or a busy-polling one, so an ordinary task the scheduler puts on
    /// that CPU (a kernel thread, another process, a shell) does not take it from the worker while frames wait; an
    /// unpinned interrupt-mode worker is left at the process's nice value. A negative value needs CAP_SYS_NICE: if refused
    /// the worker runs as before (logged, counted, shown). Under SCHED_FIFO (<see cref="RealtimePriority"/>) the kernel
    /// ignores nice; the value is still set, and holds if the real-time request is refused.
    /// </summary>
    public int? WorkerNice { get; init; }
}

public enum Role
{
    /// <summary>Everything, including commits, users and tokens.</summary>
    [JsonStringEnumMemberName("admin")]
    Admin,

    /// <summary>Every GET: configuration, revisions, live state. No change.</summary>
    [JsonStringEnumMemberName("read-only")]
    ReadOnly,
}

/// <summary>A local user. <paramref name="PasswordHash"/> is ASP.NET Core Identity's PasswordHasher format (PBKDF2).</summary>
public sealed record UserSpec(string Name, Role Role, string PasswordHash);

/// <summary>An API token for automation (Bearer). Only its hash is kept: <c>sha256:&lt;64 hex&gt;</c>.</summary>
public sealed record ApiTokenSpec(string Name, Role Role, string TokenHash);
