using System.Net;
using Isthmus.Mobility.Bgp.Fsm;
using Isthmus.Mobility.Bgp.Session;

namespace Isthmus.Mobility.Tests.Support;

/// <summary>The BGP session the interop tests run against a real peer (BIRD, FRR): AS 65001 → 65002, short timers.</summary>
internal static class InteropSessions
{
    public static BgpSession Create(IPAddress peer, IPAddress local, BgpConnectMode mode = BgpConnectMode.Active) => new(
        new BgpPeerOptions
        {
            PeerAddress = peer,
            LocalAddress = local,
            Mode = mode,
            Fsm = new BgpFsmOptions
            {
                LocalAs = 65001,
                PeerAs = 65002,
                RouterId = local,
                HoldTime = TimeSpan.FromSeconds(9),
                ConnectRetryInitial = TimeSpan.FromSeconds(2),
                ConnectRetryMax = TimeSpan.FromSeconds(4),
            },
        },
        TimeProvider.System);
}
