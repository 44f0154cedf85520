using Isthmus.Packets;

namespace Isthmus.DataPlane.Firewall;

/// <summary>
/// The TCP state machine conntrack keeps per session (RFC 9293 section 3.3.2, simplified as
/// netfilter does without window tracking): SYN_SENT → SYN_RECV → ESTABLISHED → FIN_WAIT →
/// CLOSE_WAIT → TIME_WAIT, RST → CLOSE. One method per question, no allocation.
/// </summary>
public static class TcpConntrack
{
    private const TcpFlags Significant = TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Fin | TcpFlags.Rst;

    /// <summary>
    /// Flag combinations no TCP sends (netfilter's tcp_valid_flags): SYN+FIN, SYN+RST, FIN without
    /// ACK, no SYN/ACK/RST at all (NULL, and Xmas scans). PSH, URG, ECE and CWR are ignored.
    /// </summary>
    public static bool IsValid(TcpFlags flags) => (flags & Significant) switch
    {
        TcpFlags.Syn or TcpFlags.Syn | TcpFlags.Ack or TcpFlags.Rst or TcpFlags.Rst | TcpFlags.Ack
            or TcpFlags.Fin | TcpFlags.Ack or TcpFlags.Ack => true,
        _ => false,
    };

    /// <summary>A segment that may open a session: SYN without ACK.</summary>
    public static bool Opens(TcpFlags flags) => (flags & Significant) == TcpFlags.Syn;

    /// <summary>
    /// Moves the session on for a segment of <paramref name="direction"/> (0 original, 1 reply).
    /// Returns false, changing nothing, for a segment the state does not allow (a SYN from the
    /// responder, a SYN-ACK from the initiator, a FIN before the handshake).
    /// </summary>
    public static bool Advance(ref ConntrackEntry e, int direction, TcpFlags flags)
    {
        var f = flags & Significant;
        if ((f & TcpFlags.Rst) != 0)
        {
            e.State = ConntrackState.TcpClose;
            return true;
        }

        var state = e.State;
        switch (f)
        {
            case TcpFlags.Syn:
                // Retransmitted SYN from the initiator only.
                return direction == 0 && state == ConntrackState.TcpSynSent;

            case TcpFlags.Syn | TcpFlags.Ack:
                if (direction != 1)
                {
                    return false;
                }

                if (state is ConntrackState.TcpSynSent or ConntrackState.TcpSynRecv)
                {
                    e.State = ConntrackState.TcpSynRecv;
                    return true;
                }

                // A retransmitted SYN-ACK whose ACK crossed it.
                return state == ConntrackState.TcpEstablished;

            case TcpFlags.Fin | TcpFlags.Ack:
                if (state is ConntrackState.TcpSynSent)
                {
                    return false;
                }

                e.Flags |= direction == 0 ? FlowFlags.FinOriginal : FlowFlags.FinReply;
                if ((e.Flags & (FlowFlags.FinOriginal | FlowFlags.FinReply)) == (FlowFlags.FinOriginal | FlowFlags.FinReply))
                {
                    e.State = ConntrackState.TcpTimeWait;
                }
                else if (state is ConntrackState.TcpSynRecv or ConntrackState.TcpEstablished)
                {
                    e.State = ConntrackState.TcpFinWait;
                }

                return true;

            default: // ACK
                if (state == ConntrackState.TcpSynRecv && direction == 0)
                {
                    e.State = ConntrackState.TcpEstablished;
                }
                else if (state == ConntrackState.TcpFinWait && !FinFrom(e, direction))
                {
                    // The other side acknowledges the first FIN and may still send.
                    e.State = ConntrackState.TcpCloseWait;
                }

                return true;
        }
    }

    private static bool FinFrom(in ConntrackEntry e, int direction) =>
        (e.Flags & (direction == 0 ? FlowFlags.FinOriginal : FlowFlags.FinReply)) != 0;
}
