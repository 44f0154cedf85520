using Isthmus.DataPlane.Programming;
using Isthmus.DataPlane.Tests.Support;

namespace Isthmus.DataPlane.Tests.LoadBalancer;

/// <summary>Validation of virtual servers and pools (every error with its path) and what the compiler builds.</summary>
public class LoadBalancerCompilerTests
{
    private static DataPlaneProgram With(LoadBalancerSpec lb) => L3Program.Create() with { LoadBalancer = lb };

    private static readonly PoolSpec Pool = new() { Name = "web", Backends = [new BackendSpec { Address = "10.10.0.21", Port = 80 }, new BackendSpec { Address = "10.10.0.22", Port = 80, Weight = 2 }] };

    [Fact]
    public void Every_error_is_reported_with_its_path()
    {
        var lb = new LoadBalancerSpec
        {
            VirtualServers =
            [
                new VirtualServerSpec { Name = "a", Address = "10.20.0.1", Ports = "80", Pool = "web" },
                new VirtualServerSpec { Name = "a", Address = "10.20.0.300", Protocol = "sctp", Ports = "90-80", Pool = "nope", Mode = "tunnel", Algorithm = "random", PersistenceSeconds = -1, IngressZone = "dmz", MaglevSize = 100 },
                new VirtualServerSpec { Name = "c", Address = "10.20.0.100", Ports = "80", Pool = "web" },
                new VirtualServerSpec { Name = "d", Address = "10.20.0.100", Ports = "70-90", Pool = "web" },
            ],
            Pools =
            [
                Pool,
                new PoolSpec
                {
                    Name = "bad",
                    DrainTimeoutSeconds = -5,
                    Backends = [new BackendSpec { Address = "x", Port = 0, Weight = 0 }, new BackendSpec { Address = "10.10.0.9" }, new BackendSpec { Address = "10.10.0.9" }],
                    HealthCheck = new HealthCheckSpec { Type = "icmp", ExpectStatus = 42, IntervalMs = 50, TimeoutMs = 5, Rise = 0, Fall = 101, JitterPercent = 80 },
                },
                Pool,
            ],
        };
        var errors = SnapshotCompiler.Validate(With(lb)).Select(e => e.Path).ToList();
        string[] expected =
        [
            "loadBalancer.pools[2].name",
            "loadBalancer.pools[1].drainTimeoutSeconds",
            "loadBalancer.pools[1].backends[0].address",
            "loadBalancer.pools[1].backends[0].port",
            "loadBalancer.pools[1].backends[0].weight",
            "loadBalancer.pools[1].backends[2]",
            "loadBalancer.pools[1].healthCheck.type",
            "loadBalancer.pools[1].healthCheck.port",
            "loadBalancer.pools[1].healthCheck.expectStatus",
            "loadBalancer.pools[1].healthCheck.intervalMs",
            "loadBalancer.pools[1].healthCheck.timeoutMs",
            "loadBalancer.pools[1].healthCheck.rise",
            "loadBalancer.pools[1].healthCheck.fall",
            "loadBalancer.pools[1].healthCheck.jitterPercent",
            "loadBalancer.virtualServers[0].address",
            "loadBalancer.virtualServers[1].name",
            "loadBalancer.virtualServers[1].address",
            "loadBalancer.virtualServers[1].protocol",
            "loadBalancer.virtualServers[1].ports",
            "loadBalancer.virtualServers[1].mode",
            "loadBalancer.virtualServers[1].algorithm",
            "loadBalancer.virtualServers[1].persistenceSeconds",
            "loadBalancer.virtualServers[1].maglevSize",
            "loadBalancer.virtualServers[1].ingressZone",
            "loadBalancer.virtualServers[1].pool",
            "loadBalancer.virtualServers[3].ports",
        ];
        var http = new PoolSpec { Name = "h", Backends = Pool.Backends, HealthCheck = new HealthCheckSpec { Type = "http", Path = "health" } };
        Assert.Contains(SnapshotCompiler.Validate(With(new LoadBalancerSpec { Pools = [http] })), e => e.Path == "loadBalancer.pools[0].healthCheck.path");
        foreach (var path in expected)
        {
            Assert.True(errors.Contains(path), $"{path} missing from: {string.Join(", ", errors)}");
        }
    }

    [Fact]
    public void A_vip_may_not_also_be_a_port_forward()
    {
        var program = With(new LoadBalancerSpec { VirtualServers = [new VirtualServerSpec { Name = "a", Address = "10.20.0.100", Ports = "80", Pool = "web" }], Pools = [Pool] }) with
        {
            Nat = new NatSpec { Dnat = [new DnatRuleSpec { Destination = "10.20.0.100", Port = 80, ToAddress = "10.10.0.5" }] },
        };
        Assert.Contains(SnapshotCompiler.Validate(program), e => e.Path == "loadBalancer.virtualServers[0].ports");
    }

    [Fact]
    public void The_compiled_server_has_a_prime_maglev_table_of_at_least_100_slots_per_weight_kept_when_health_changes()
    {
        var program = With(new LoadBalancerSpec { VirtualServers = [new VirtualServerSpec { Name = "a", Address = "10.20.0.100", Ports = "80", Pool = "web" }], Pools = [Pool] });
        var snapshot = SnapshotCompiler.Compile(program, 1, TimeSpan.TicksPerSecond);
        var server = Assert.Single(snapshot.LoadBalancer.Servers);
        Assert.True(server.Maglev!.Size >= 300);
        Assert.True(snapshot.Firewall.Tracking);
        Assert.Contains(0x0A140064u, (IReadOnlySet<uint>)snapshot.Firewall.NatAddresses);

        var oneDown = SnapshotCompiler.WithBackendHealth(snapshot, new HashSet<string> { "web/10.10.0.22:80" });
        var after = oneDown.LoadBalancer.Servers[0];
        Assert.Equal(server.Maglev.Size, after.Maglev!.Size);
        Assert.Single(after.Eligible);
        Assert.Same(snapshot.Firewall, oneDown.Firewall);
        Assert.Same(snapshot.L3, oneDown.L3);
    }
}
