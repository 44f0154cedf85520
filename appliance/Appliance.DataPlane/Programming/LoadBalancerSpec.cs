namespace Isthmus.DataPlane.Programming;

/// <summary>
/// The L4 load balancer (issue 5): virtual servers (VIP + protocol + port or port range) in front of
/// pools of backends. A new flow to a VIP picks a backend in the <c>lb</c> stage and becomes a
/// conntrack session with a DNAT translation (and, in full NAT, an SNAT to the appliance's address
/// on the backend's segment); its later packets follow the session and never consult the pool again.
/// IPv4 only. See LoadBalancer/README.md.
/// </summary>
public sealed record LoadBalancerSpec
{
    public IReadOnlyList<VirtualServerSpec> VirtualServers { get; init; } = [];

    public IReadOnlyList<PoolSpec> Pools { get; init; } = [];
}

/// <summary>One virtual server: new flows to <see cref="Address"/>:<see cref="Ports"/> over <see cref="Protocol"/> go to a backend of <see cref="Pool"/>.</summary>
public sealed record VirtualServerSpec
{
    /// <summary>Unique name (API, trace, metrics).</summary>
    public required string Name { get; init; }

    /// <summary>The VIP, an IPv4 address that is not one of the appliance's interface addresses.</summary>
    public required string Address { get; init; }

    /// <summary>"tcp" or "udp".</summary>
    public string Protocol { get; init; } = "tcp";

    /// <summary>"80" or a range "8000-8099".</summary>
    public required string Ports { get; init; }

    public required string Pool { get; init; }

    /// <summary>
    /// "full-nat" (default): DNAT to the backend and SNAT to the appliance's address on the backend's
    /// segment, so backends need no route back. "dnat-only": the client's source is kept, so the
    /// appliance must be the backends' gateway.
    /// </summary>
    public string Mode { get; init; } = "full-nat";

    /// <summary>"maglev" (default, consistent hashing of the 5-tuple), "wrr" (weighted round robin) or "least-conn".</summary>
    public string Algorithm { get; init; } = "maglev";

    /// <summary>Source-IP persistence: a client's new flows go to the backend of its last flow for this long (0: off).</summary>
    public int PersistenceSeconds { get; init; }

    /// <summary>Zone new flows must arrive from (null: any).</summary>
    public string? IngressZone { get; init; }

    /// <summary>Maglev table size (a prime); 0: the smallest prime ≥ 100 × Σ weights of every configured backend (kept when backends come and go).</summary>
    public int MaglevSize { get; init; }
}

/// <summary>A named set of backends with an optional active health check.</summary>
public sealed record PoolSpec
{
    public required string Name { get; init; }

    public IReadOnlyList<BackendSpec> Backends { get; init; } = [];

    /// <summary>How long a draining backend's existing flows may live before they are cut (0: until they end).</summary>
    public int DrainTimeoutSeconds { get; init; } = 300;

    /// <summary>Active check run by the control plane; null: every enabled backend counts as up.</summary>
    public HealthCheckSpec? HealthCheck { get; init; }
}

/// <param name="Address">IPv4 address.</param>
/// <param name="Port">Null: keep the destination port the client used (for a port-range VIP).</param>
public sealed record BackendSpec
{
    public required string Address { get; init; }

    public int? Port { get; init; }

    /// <summary>1-1000: share of new flows relative to the pool's other backends.</summary>
    public int Weight { get; init; } = 1;

    /// <summary>Off: no flows at all (existing ones keep running until they end).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>No new flows; existing ones keep running until they end or the pool's drain timeout passes.</summary>
    public bool Drain { get; init; }
}

/// <summary>An active health check (run in the control plane, in the data plane's network namespace).</summary>
public sealed record HealthCheckSpec
{
    /// <summary>"tcp" (connect), "http" or "https" (GET), "udp" (send a probe, expect a reply).</summary>
    public string Type { get; init; } = "tcp";

    /// <summary>Port to check; null: the backend's port.</summary>
    public int? Port { get; init; }

    /// <summary>HTTP(S): the request path.</summary>
    public string Path { get; init; } = "/";

    /// <summary>HTTP(S): the status a healthy backend answers with.</summary>
    public int ExpectStatus { get; init; } = 200;

    /// <summary>HTTP(S): a substring the body must contain (null: any body). UDP: a substring the reply must contain.</summary>
    public string? BodyMatch { get; init; }

    /// <summary>UDP: the payload sent.</summary>
    public string UdpPayload { get; init; } = "ping";

    public int IntervalMs { get; init; } = 2000;

    public int TimeoutMs { get; init; } = 1000;

    /// <summary>Consecutive successes that bring a down backend up.</summary>
    public int Rise { get; init; } = 2;

    /// <summary>Consecutive failures that take an up backend down.</summary>
    public int Fall { get; init; } = 3;

    /// <summary>Each interval is drawn from interval ± this percentage, so checks do not synchronise.</summary>
    public int JitterPercent { get; init; } = 10;
}
