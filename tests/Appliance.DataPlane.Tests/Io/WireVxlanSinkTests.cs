using System.Globalization;
using Isthmus.Benchmarks.Wire;
using Isthmus.Packets;

namespace Isthmus.DataPlane.Tests.Io;

/// <summary>
/// The wire benchmark's VXLAN sink (tests/Appliance.Benchmarks/Wire/vxlan-sink.sh: fwd's receiver with --sink drop, on
/// the underlay switch's port facing the forwarder) on a real veth: it counts and drops only well-formed VXLAN datagrams
/// of its VNI carrying the generator's inner frame (to the VM's MAC, IPv4 UDP to port 9); every other datagram to 4789
/// (another VNI, a flag or reserved bit wrong, another inner frame) and VXLAN to another port passes on, as a later
/// chain of the same ingress hook counts.
/// </summary>
public sealed class WireVxlanSinkTests
{
    private static readonly MacAddress Vm = MacAddress.Parse("02:00:00:00:50:10");

    [Fact]
    public void Only_well_formed_vxlan_of_its_vni_to_the_vm_is_counted_and_dropped_the_rest_passes()
    {
        if (!Requires.RootAndNetns() || !Requires.Tool("nft"))
        {
            return;
        }

        using var net = new VethPair();
        Sink("add", net.NamespaceB, net.LinkB, "5010", Vm.ToString());

        // After the sink (priority 10 > 0) in the same hook: the datagrams to 4789 it let pass.
        Ip.Run("netns", "exec", net.NamespaceB, "nft",
            $"add table netdev istpassed; add counter netdev istpassed passed; add chain netdev istpassed in {{ type filter hook ingress device \"{net.LinkB}\" priority 10; policy accept; }}; add rule netdev istpassed in udp dport 4789 counter name passed");

        const int Each = 50;
        var good = Vxlan(Vm, 5010, 9, 4789);
        byte[][] others =
        [
            Vxlan(Vm, 5020, 9, 4789), // another VNI
            Patch(good, 42, 0x00), // the I flag clear
            Patch(good, 42, 0x0c), // another flag beside I
            Patch(good, 45, 0x01), // the reserved bits after the flags
            Patch(good, 49, 0x01), // the reserved byte after the VNI
            Vxlan(MacAddress.Parse("02:00:00:00:50:11"), 5010, 9, 4789), // another inner destination
            Vxlan(Vm, 5010, 10, 4789), // another inner port
        ];
        var elsewhere = Vxlan(Vm, 5010, 9, 8472); // Linux's old VXLAN port: not to 4789, passes and is not counted

        WireGenDropSinkTests.Send(net, good, Each);
        foreach (var frame in others)
        {
            WireGenDropSinkTests.Send(net, frame, Each);
        }

        WireGenDropSinkTests.Send(net, elsewhere, Each);

        Assert.Equal(Each, long.Parse(Sink("count", net.NamespaceB).Trim(), CultureInfo.InvariantCulture));
        var passed = Ip.TryRun("netns", "exec", net.NamespaceB, "nft", "list", "counter", "netdev", "istpassed", "passed").Output;
        Assert.Contains($"packets {others.Length * Each} ", passed, StringComparison.Ordinal);

        Sink("del", net.NamespaceB);
        Assert.DoesNotContain("istvxsink", Ip.TryRun("netns", "exec", net.NamespaceB, "nft", "list", "tables").Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        if (!Requires.RootAndNetns() || !Requires.Tool("nft"))
        {
            return;
        }

        Assert.NotEqual(0, TrySink("add", "istt-none", "eth0", "16777216", Vm.ToString()).ExitCode);
        Assert.NotEqual(0, TrySink("add", "istt-none", "eth0", "5010", "02:00:00:00:50").ExitCode);
        Assert.NotEqual(0, TrySink("count").ExitCode);
    }

    /// <summary>The generator's inner frame (60 bytes, UDP 40000 → <paramref name="port"/>) to <paramref name="inner"/>, as a VTEP sends it.</summary>
    private static byte[] Vxlan(MacAddress inner, uint vni, ushort port, ushort vxlanPort)
    {
        var frame = new byte[WireFrame.MaxLength];
        var spec = new Ipv4FrameSpec(MacAddress.Parse("02:00:00:00:00:0a"), inner, Ipv4Address.Parse("10.10.0.10"), Ipv4Address.Parse("10.10.0.99"));
        var vtep = new VtepSpec(
            MacAddress.Parse("02:00:00:00:00:01"), MacAddress.Parse("02:00:00:00:00:02"), Ipv4Address.Parse("192.0.2.1"), Ipv4Address.Parse("192.0.2.2"),
            vni, 49152, vxlanPort);
        var length = WireFrame.Write(frame, spec, 40000, port, 60, vtep);
        return frame[..length];
    }

    /// <summary>A copy with one byte changed (14 Ethernet + 20 IPv4 + 8 UDP: the VXLAN header starts at 42).</summary>
    private static byte[] Patch(byte[] frame, int offset, byte value)
    {
        var copy = (byte[])frame.Clone();
        copy[offset] = value;
        return copy;
    }

    private static string Sink(params string[] args)
    {
        var (code, output) = TrySink(args);
        Assert.True(code == 0, $"vxlan-sink.sh {string.Join(' ', args)} failed ({code}): {output}");
        return output;
    }

    private static (int ExitCode, string Output) TrySink(params string[] args) =>
        Ip.Exec("/bin/bash", [Path.Combine(RepoRoot(), "tests", "Appliance.Benchmarks", "Wire", "vxlan-sink.sh"), .. args]);

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Appliance.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException($"Appliance.sln not found above {AppContext.BaseDirectory}");
    }
}
