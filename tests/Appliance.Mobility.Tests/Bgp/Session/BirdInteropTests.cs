using System.Diagnostics;
using System.Net;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Fsm;
using Isthmus.Mobility.Bgp.Session;
using Isthmus.Mobility.Tests.Support;
using static Isthmus.Mobility.Tests.Support.Shell;

namespace Isthmus.Mobility.Tests.Bgp.Session;

/// <summary>
/// Interop with a real peer nobody here wrote: BIRD 2 in its own network namespace, joined to this
/// process's namespace by a veth pair. Needs root; with CI=true a missing prerequisite fails the test.
/// </summary>
public sealed class BirdInteropTests : IDisposable
{
    private readonly string _suffix = Convert.ToHexString(BitConverter.GetBytes(Random.Shared.Next())).ToLowerInvariant()[..4];
    private readonly string _directory = Directory.CreateTempSubdirectory("istt-bgp-").FullName;
    private readonly int _subnet = Random.Shared.Next(0, 64) * 4;
    private Process? _bird;
    private bool _namespaceCreated;

    private string Namespace => "istt-bgp-" + _suffix;

    private string HostVeth => "isttb" + _suffix + "h";

    private string PeerVeth => "isttb" + _suffix + "p";

    private IPAddress HostAddress => IPAddress.Parse($"10.213.{Random8}.{_subnet + 1}");

    private IPAddress BirdAddress => IPAddress.Parse($"10.213.{Random8}.{_subnet + 2}");

    private int Random8 => Convert.ToInt32(_suffix[..2], 16);

    private string Socket => Path.Combine(_directory, "bird.ctl");

    [Fact]
    public async Task Bird_sees_the_host_route_with_its_communities_then_the_withdrawal()
    {
        if (!Prerequisites())
        {
            return;
        }

        StartBird();
        await using var session = NewSession(BgpConnectMode.Active);
        session.Start();
        await ExchangeRoutesAsync(session);
    }

    [Fact]
    public async Task Bird_connecting_to_our_listener_brings_a_passive_session_up()
    {
        if (!Prerequisites())
        {
            return;
        }

        BgpSession? session = null;
        await using var listener = new BgpListener(
            new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp),
            new IPEndPoint(IPAddress.Any, 0),
            address => address.Equals(BirdAddress) ? session : null);
        StartBird(activeToPort: listener.Port);
        session = NewSession(BgpConnectMode.Passive);
        await using (session)
        {
            session.Start();
            await ExchangeRoutesAsync(session);
            Assert.True(listener.Accepted >= 1);
        }
    }

    private BgpSession NewSession(BgpConnectMode mode) => InteropSessions.Create(BirdAddress, HostAddress, mode);

    /// <summary>Up, our /32 with its communities in BIRD's RIB, BIRD's route in ours, the withdrawal, the graceful shutdown.</summary>
    private async Task ExchangeRoutesAsync(BgpSession session)
    {
        await Eventually(() => session.State == BgpState.Established, () => $"session {session.State}: {session.LastError}\n{Birdc("show protocols all isthmus")}", 120);

        await session.SetAdvertisementsAsync(
        [
            new Advertisement(IPNetwork.Parse("10.77.0.5/32"))
            {
                Communities = [new Community(65001, 666)],
                LargeCommunities = [new LargeCommunity(65001, 1, 2)],
            },
        ]);
        string routes = string.Empty;
        await Eventually(() => (routes = Birdc("show route all")).Contains("10.77.0.5/32", StringComparison.Ordinal), () => routes, 120);
        Assert.Contains("(65001,666)", routes, StringComparison.Ordinal);
        Assert.Contains("(65001, 1, 2)", routes, StringComparison.Ordinal);
        Assert.Contains("65001", routes, StringComparison.Ordinal);
        Assert.Contains(HostAddress.ToString(), routes, StringComparison.Ordinal);

        // BIRD's static route arrives in the Adj-RIB-In.
        await Eventually(() => session.AdjRibIn.ContainsKey(IPNetwork.Parse("198.51.100.0/24")), () => string.Join(", ", session.AdjRibIn.Keys), 120);
        Assert.Equal(BirdAddress, session.AdjRibIn[IPNetwork.Parse("198.51.100.0/24")].NextHop);

        await session.SetAdvertisementsAsync([]);
        await Eventually(() => !(routes = Birdc("show route all")).Contains("10.77.0.5/32", StringComparison.Ordinal), () => routes, 120);

        await session.StopAsync("interop test done");
        var protocol = string.Empty;
        await Eventually(() => !(protocol = Birdc("show protocols all isthmus")).Contains("Established", StringComparison.Ordinal), () => protocol, 120);
    }

    public void Dispose()
    {
        if (_bird is { HasExited: false })
        {
            _bird.Kill();
            _bird.WaitForExit(5000);
        }

        _bird?.Dispose();
        if (_namespaceCreated)
        {
            Run("ip", "netns", "del", Namespace);
            Run("ip", "link", "del", HostVeth);
        }

        Directory.Delete(_directory, recursive: true);
    }

    private static bool Prerequisites()
    {
        var ci = Environment.GetEnvironmentVariable("CI") == "true";
        string? missing = Environment.UserName != "root" && Run("id", "-u").Output.Trim() != "0" ? "root"
            : !File.Exists("/usr/sbin/bird") || !File.Exists("/usr/sbin/birdc") ? "bird2 (apt-get install -y bird2)"
            : null;
        if (missing is null)
        {
            return true;
        }

        if (ci)
        {
            Assert.Fail("BIRD interop needs " + missing);
        }

        return false;
    }

    /// <param name="activeToPort">Non-zero: BIRD connects to us on this port (our passive side) instead of waiting.</param>
    private void StartBird(int activeToPort = 0)
    {
        _namespaceCreated = true;
        Must("ip", "netns", "add", Namespace);
        Must("ip", "link", "add", HostVeth, "type", "veth", "peer", "name", PeerVeth);
        Must("ip", "link", "set", PeerVeth, "netns", Namespace);
        Must("ip", "addr", "add", HostAddress + "/30", "dev", HostVeth);
        Must("ip", "link", "set", HostVeth, "up");
        Must("ip", "-n", Namespace, "addr", "add", BirdAddress + "/30", "dev", PeerVeth);
        Must("ip", "-n", Namespace, "link", "set", PeerVeth, "up");
        Must("ip", "-n", Namespace, "link", "set", "lo", "up");

        var config = Path.Combine(_directory, "bird.conf");
        File.WriteAllText(config, $$"""
            router id {{BirdAddress}};
            log "{{Path.Combine(_directory, "bird.log")}}" all;
            protocol device { }
            protocol static {
              ipv4;
              route 198.51.100.0/24 blackhole;
            }
            protocol bgp isthmus {
              local {{BirdAddress}} as 65002;
              neighbor {{HostAddress}} {{(activeToPort == 0 ? "" : $"port {activeToPort} ")}}as 65001;
              {{(activeToPort == 0 ? "passive on;" : "connect delay time 1; connect retry time 2;")}}
              hold time 9;
              ipv4 { import all; export all; };
            }
            """);
        var start = new ProcessStartInfo("ip", ["netns", "exec", Namespace, "bird", "-f", "-c", config, "-s", Socket])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        _bird = Process.Start(start)!;
        for (var i = 0; i < 600 && !File.Exists(Socket) && !_bird.HasExited; i++) // up to 30 s: a bound for a loaded machine
        {
            Thread.Sleep(50);
        }

        if (!File.Exists(Socket))
        {
            _bird.Kill();
            Assert.Fail("bird did not start: " + _bird.StandardError.ReadToEnd());
        }
    }

    private string Birdc(string command) => Run("birdc", ["-s", Socket, .. command.Split(' ')]).Output;
}
