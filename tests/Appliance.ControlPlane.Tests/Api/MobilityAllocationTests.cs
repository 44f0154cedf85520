using Isthmus.ControlPlane.Tests.Support;
using Isthmus.DataPlane.Io;
using Isthmus.Packets;
using Xunit.Abstractions;

namespace Isthmus.ControlPlane.Tests.Api;

/// <summary>
/// What a move costs the garbage collector on the mobility loop (bytes, not time): a workload learned across the
/// interconnect (GARP on trunk0 VLAN 10), then its vMotion (RARP on acc10) announcing its /32, as mobility-bench does.
/// The loop's own allocation counter (<c>runtime.loopAllocatedBytes</c>) is read across the measured moves.
/// </summary>
public sealed class MobilityAllocationTests(ITestOutputHelper output) : IDisposable
{
    private readonly MobileAppliance _appliance = new();

    [Fact]
    public async Task A_move_allocates_a_bounded_amount_on_the_mobility_loop_whatever_the_number_of_workloads()
    {
        var mobility = _appliance.Mobility;

        // Warm-up: the path's first calls, the sets and dictionaries grown; then 200 more workloads known at the other site.
        for (var i = 0; i < 20; i++)
        {
            await Move(i);
        }

        for (var i = 20; i < 220; i++)
        {
            Learn(i);
        }

        await MobileAppliance.Eventually(() => mobility.Status.Workloads.Count(w => w.Addresses.Count > 0) >= 220);

        var before = mobility.Latency.Runtime().LoopAllocatedBytes;
        const int Moves = 40;
        for (var i = 20; i < 20 + Moves; i++)
        {
            await Move(i);
        }

        var perMove = (mobility.Latency.Runtime().LoopAllocatedBytes - before) / Moves;
        output.WriteLine($"mobility loop: {perMove} bytes per move (learn across the interconnect + RARP + GARP burst + route), 220 workloads");

        Assert.True(perMove < 12_000, $"{perMove} bytes per move");
    }

    private static MacAddress Mac(int i) => MacAddress.Parse($"00:50:56:01:{i / 256:x2}:{i % 256:x2}");

    private static Ipv4Address Ip(int i) => Ipv4Address.Parse($"10.10.0.{20 + i}");

    private void Learn(int i)
    {
        var buffer = new byte[64];
        var n = PacketBuilder.GarpRequest(buffer, Mac(i), Ip(i));
        _appliance.Factory.Ports["trunk0"].Enqueue(new MemoryFrame(buffer[..n], 10));
    }

    private async Task Move(int i)
    {
        var mobility = _appliance.Mobility;
        var prefix = $"{Ip(i)}/32";
        if (!mobility.Status.Workloads.Any(w => w.Mac == Mac(i).ToString()))
        {
            Learn(i);
        }

        // Known at the other site before it moves (the GARP and the RARP enter on two ports: the worker may take either first).
        await MobileAppliance.Eventually(() => mobility.Status.Workloads.Any(w => w.Mac == Mac(i).ToString() && w.Addresses.Count > 0 && !w.Local));
        var buffer = new byte[64];
        var n = PacketBuilder.RarpRequest(buffer, Mac(i));
        _appliance.Factory.Ports["acc10"].Enqueue(new MemoryFrame(buffer[..n]));
        await MobileAppliance.Eventually(() => mobility.Status.Announced.Any(r => r.Prefix == prefix));
    }

    public void Dispose() => _appliance.Dispose();
}
