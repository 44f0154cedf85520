using System.Diagnostics;
using System.Net;
using Isthmus.Mobility.Bgp.Codec;
using Isthmus.Mobility.Bgp.Fsm;
using Isthmus.Mobility.Bgp.Session;
using Isthmus.Mobility.Tests.Support;
using static Isthmus.Mobility.Tests.Support.Shell;

namespace Isthmus.Mobility.Tests.Bgp.Session;

/// <summary>
/// Interop with FRR (zebra + bgpd) in its own network namespace, joined to this process's namespace by a
/// veth pair. The daemons run as the default <c>frr</c> user with their config, pid files and sockets in a
/// private directory owned by that user. Needs root; with CI=true a missing prerequisite fails the test.
/// </summary>
public sealed class FrrInteropTests : IDisposable
{
    private const string Zebra = "/usr/lib/frr/zebra";
    private const string Bgpd = "/usr/lib/frr/bgpd";
    private const string Vtysh = "/usr/bin/vtysh";

    private readonly string _suffix = Convert.ToHexString(BitConverter.GetBytes(Random.Shared.Next())).ToLowerInvariant()[..4];
    private readonly string _directory = Directory.CreateTempSubdirectory("istt-bgp-").FullName;
    private readonly int _subnet = Random.Shared.Next(0, 64) * 4;
    private Process? _zebra;
    private Process? _bgpd;
    private bool _namespaceCreated;

    private string Namespace => "istt-bgp-f" + _suffix;

    private string HostVeth => "isttf" + _suffix + "h";

    private string PeerVeth => "isttf" + _suffix + "p";

    private IPAddress HostAddress => IPAddress.Parse($"10.214.{Random8}.{_subnet + 1}");

    private IPAddress FrrAddress => IPAddress.Parse($"10.214.{Random8}.{_subnet + 2}");

    private int Random8 => Convert.ToInt32(_suffix[..2], 16);

    [Fact]
    public async Task Frr_sees_the_host_route_with_its_communities_then_the_withdrawal()
    {
        if (!Prerequisites())
        {
            return;
        }

        StartFrr();
        await using var session = InteropSessions.Create(FrrAddress, HostAddress);
        session.Start();
        await Eventually(() => session.State == BgpState.Established, () => $"session {session.State}: {session.LastError}\n{Vty($"show bgp neighbors {HostAddress}")}", 80);

        await session.SetAdvertisementsAsync(
        [
            new Advertisement(IPNetwork.Parse("10.77.0.5/32"))
            {
                Communities = [new Community(65001, 666)],
                LargeCommunities = [new LargeCommunity(65001, 1, 2)],
            },
        ]);
        string route = string.Empty;
        await Eventually(() => (route = Vty("show ip bgp 10.77.0.5/32")).Contains("Community:", StringComparison.Ordinal), () => route, 80);
        Assert.Contains("10.77.0.5/32", route, StringComparison.Ordinal);
        Assert.Contains("Community: 65001:666", route, StringComparison.Ordinal);
        Assert.Contains("Large Community: 65001:1:2", route, StringComparison.Ordinal);
        Assert.Contains("65001", route, StringComparison.Ordinal);
        Assert.Contains(HostAddress.ToString(), route, StringComparison.Ordinal);

        // FRR's network statement arrives in the Adj-RIB-In.
        await Eventually(() => session.AdjRibIn.ContainsKey(IPNetwork.Parse("198.51.100.0/24")), () => string.Join(", ", session.AdjRibIn.Keys) + "\n" + Vty("show ip bgp"), 80);
        Assert.Equal(FrrAddress, session.AdjRibIn[IPNetwork.Parse("198.51.100.0/24")].NextHop);

        await session.SetAdvertisementsAsync([]);
        await Eventually(() => (route = Vty("show ip bgp 10.77.0.5/32")).Contains("Network not in table", StringComparison.Ordinal), () => route, 80);

        await session.StopAsync("interop test done");
        var neighbor = string.Empty;
        await Eventually(() => !(neighbor = Vty($"show bgp neighbors {HostAddress}")).Contains("BGP state = Established", StringComparison.Ordinal), () => neighbor, 80);
    }

    public void Dispose()
    {
        Stop(_bgpd);
        Stop(_zebra);
        if (_namespaceCreated)
        {
            Run("ip", "netns", "del", Namespace);
            Run("ip", "link", "del", HostVeth);
        }

        Directory.Delete(_directory, recursive: true);
    }

    private static void Stop(Process? process)
    {
        if (process is null)
        {
            return;
        }

        if (!process.HasExited)
        {
            process.Kill();
            process.WaitForExit(5000);
        }

        process.Dispose();
    }

    private static bool Prerequisites()
    {
        var ci = Environment.GetEnvironmentVariable("CI") == "true";
        string? missing = Environment.UserName != "root" && Run("id", "-u").Output.Trim() != "0" ? "root"
            : !File.Exists(Zebra) || !File.Exists(Bgpd) || !File.Exists(Vtysh) ? "frr (apt-get install -y frr)"
            : null;
        if (missing is null)
        {
            return true;
        }

        if (ci)
        {
            Assert.Fail("FRR interop needs " + missing);
        }

        return false;
    }

    private void StartFrr()
    {
        _namespaceCreated = true;
        Must("ip", "netns", "add", Namespace);
        Must("ip", "link", "add", HostVeth, "type", "veth", "peer", "name", PeerVeth);
        Must("ip", "link", "set", PeerVeth, "netns", Namespace);
        Must("ip", "addr", "add", HostAddress + "/30", "dev", HostVeth);
        Must("ip", "link", "set", HostVeth, "up");
        Must("ip", "-n", Namespace, "addr", "add", FrrAddress + "/30", "dev", PeerVeth);
        Must("ip", "-n", Namespace, "link", "set", PeerVeth, "up");
        Must("ip", "-n", Namespace, "link", "set", "lo", "up");

        File.WriteAllText(Path.Combine(_directory, "zebra.conf"), "hostname istt-zebra\n");
        File.WriteAllText(Path.Combine(_directory, "bgpd.conf"), $"""
            frr defaults traditional
            hostname istt-bgpd
            router bgp 65002
             bgp router-id {FrrAddress}
             no bgp ebgp-requires-policy
             no bgp network import-check
             neighbor {HostAddress} remote-as 65001
             neighbor {HostAddress} passive
             neighbor {HostAddress} timers 3 9
             address-family ipv4 unicast
              network 198.51.100.0/24
             exit-address-family

            """);

        // The daemons drop to the frr user: it must own the directory to write pid files and sockets.
        Must("chown", "-R", "frr:frr", _directory);
        Must("chmod", "0755", _directory);

        var api = Path.Combine(_directory, "zserv.api");
        _zebra = StartDaemon(Zebra, "zebra", api);
        WaitForFile(api, _zebra, "zebra");
        _bgpd = StartDaemon(Bgpd, "bgpd", api);
        WaitForFile(Path.Combine(_directory, "bgpd.vty"), _bgpd, "bgpd");
    }

    private Process StartDaemon(string binary, string name, string api)
    {
        var start = new ProcessStartInfo(
            "ip",
            ["netns", "exec", Namespace, binary,
             "-f", Path.Combine(_directory, name + ".conf"),
             "-i", Path.Combine(_directory, name + ".pid"),
             "-z", api,
             "--vty_socket", _directory])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Waits for a daemon's socket, up to 30 s (a bound for a loaded machine, where FRR's start can take seconds).</summary>
    private static void WaitForFile(string path, Process process, string name)
    {
        for (var i = 0; i < 600 && !File.Exists(path) && !process.HasExited; i++)
        {
            Thread.Sleep(50);
        }

        Assert.True(File.Exists(path), $"{name} did not start (exited: {process.HasExited})");
    }

    private string Vty(string command) => Run(Vtysh, "--vty_socket", _directory, "-c", command).Output;
}
