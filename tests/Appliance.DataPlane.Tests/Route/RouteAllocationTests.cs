using Isthmus.DataPlane.Bridge;
using Isthmus.DataPlane.Gateway;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Pipeline;
using Isthmus.DataPlane.Route;
using Isthmus.DataPlane.Tests.Support;
using Isthmus.Testing;
using Isthmus.Packets;
using static Isthmus.DataPlane.Tests.Support.L2Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Fixture;
using static Isthmus.DataPlane.Tests.Support.L3Frames;

namespace Isthmus.DataPlane.Tests.Route;

/// <summary>
/// The routed hot path allocates nothing: bridge → gateway → route → neighbor → encap in steady
/// state (the firewall stages are left out so this measures the L3 stages alone).
/// </summary>
public class RouteAllocationTests
{
    [Fact]
    public void Routing_ipv4_and_ipv6_to_resolved_neighbors_allocates_nothing_per_packet()
    {
        using var lab = new L3Fixture(pipeline: new PacketPipeline([new BridgeStage(), new GatewayStage(), new RouteStage(), new NeighborStage()]));
        lab.Announce(Acc20, Host20, Host20Ip);
        lab.Receive(Acc20, NeighborAdvertisement(Host20, Host206, Gw20, Gw206));
        lab.ClearSent();
        foreach (var port in lab.Ports)
        {
            port.CaptureTransmitted = false;
        }

        lab.Ports[Acc10].Replay(
        [
            new MemoryFrame(Udp(HostA, Gw10, HostAIp, Host20Ip)),
            new MemoryFrame(Syn(HostA, Gw10, HostAIp, Host20Ip, 1460)),
            new MemoryFrame(Udp6(HostA, Gw10, HostA6, Host206)),
        ]);
        for (var i = 0; i < 20; i++)
        {
            lab.Worker.RunOnce();
        }

        var allocated = Allocations.FewestBytes(() =>
        {
            for (var i = 0; i < 100; i++)
            {
                lab.Worker.RunOnce();
            }
        });
        lab.Ports[Acc10].Replay([]);
        Assert.Equal(0, allocated);
        Assert.True(lab.Ports[Acc20].Counters.TxPackets >= 100 * PacketBatch.MaxSize);
    }
}
