using Isthmus.Mobility.Bgp.Codec;

namespace Isthmus.Mobility.Bgp.Fsm;

/// <summary>What the peer agreed to in the OPEN exchange.</summary>
public sealed record BgpNegotiated(OpenMessage PeerOpen, ushort HoldTime, bool FourOctetAs, bool RouteRefresh, IReadOnlyList<AfiSafi> Families)
{
    public BgpDecodeContext DecodeContext => new(FourOctetAs);
}

/// <summary>The FSM's actions (RFC 4271 §8.2.2's "initiates a TCP connection", "sends", ...), done by the session.</summary>
public interface IBgpFsmHost
{
    void Connect();

    void Disconnect();

    void Send(BgpMessage message);

    void SessionEstablished(BgpNegotiated negotiated);

    void SessionDown(string reason);

    void UpdateReceived(UpdateMessage update, BgpError? softError);

    void RouteRefreshReceived(RouteRefreshMessage routeRefresh);
}
