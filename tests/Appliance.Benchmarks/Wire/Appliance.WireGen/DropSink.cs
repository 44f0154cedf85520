using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Io.Native;

namespace Isthmus.Benchmarks.Wire;

/// <summary>
/// The benchmark's cheapest receiver (<c>WireGen --drop-sink</c>, <c>wire-bench.sh --sink xdp</c>): an XDP program in
/// the receiving veth's driver hook that drops IPv4 UDP frames to one port and passes everything else (ARP, ICMP, the
/// set-up pings) to the stack. Loaded and attached with the appliance's own BPF loader (<see cref="XdpSocket"/>,
/// BPF_LINK_CREATE in native mode): the link, and with it the program, goes away when this is disposed or the process
/// dies. veth still counts every frame it hands to its XDP program in the receiver's <c>rx_packets</c>, so delivered
/// is counted as with the other sinks, while the receiver's ingress (netif_rx, the backlog, the netdev hook) is not
/// run inside the forwarder's transmit.
/// </summary>
internal sealed class DropSink : IDisposable
{
    private int _program = -1;
    private int _link = -1;

    public DropSink(int ifIndex, ushort port)
    {
        try
        {
            _program = XdpSocket.LoadProgram(Program(port));
            _link = XdpSocket.AttachNative(_program, ifIndex);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// Ethernet + IPv4 with a 20-byte header + UDP to <paramref name="port"/> (host order): XDP_DROP; anything else,
    /// or a frame too short to tell: XDP_PASS. Loads are little-endian, so network-order fields are compared with
    /// byte-swapped constants.
    /// </summary>
    public static ulong[] Program(ushort port)
    {
        var portLe = (int)System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(port);
        const int Pass = 15;
        static ulong Jne(int at, int dst, int imm) => XdpSocket.Insn(0x55, dst, 0, (short)(Pass - (at + 1)), imm);
        return
        [
            XdpSocket.Insn(0x61, dst: 2, src: 1, off: 0, imm: 0),    //  0: r2 = ctx->data
            XdpSocket.Insn(0x61, dst: 3, src: 1, off: 4, imm: 0),    //  1: r3 = ctx->data_end
            XdpSocket.Insn(0xbf, dst: 4, src: 2, off: 0, imm: 0),    //  2: r4 = r2
            XdpSocket.Insn(0x07, dst: 4, src: 0, off: 0, imm: 38),   //  3: r4 += 38 (Ethernet + IPv4 + UDP ports)
            XdpSocket.Insn(0x2d, dst: 4, src: 3, off: Pass - 5, imm: 0), // 4: if r4 > r3 goto pass
            XdpSocket.Insn(0x69, dst: 5, src: 2, off: 12, imm: 0),   //  5: r5 = EtherType
            Jne(6, 5, 0x0008),                                       //  6: != 0x0800
            XdpSocket.Insn(0x71, dst: 5, src: 2, off: 14, imm: 0),   //  7: r5 = version/IHL
            Jne(8, 5, 0x45),                                         //  8: != IPv4, 20 bytes
            XdpSocket.Insn(0x69, dst: 5, src: 2, off: 36, imm: 0),   //  9: r5 = UDP destination port
            Jne(10, 5, portLe),                                      // 10: != port
            XdpSocket.Insn(0x71, dst: 5, src: 2, off: 23, imm: 0),   // 11: r5 = protocol
            XdpSocket.Insn(0x55, dst: 5, src: 0, off: 2, imm: 17),   // 12: != UDP: goto pass (15)
            XdpSocket.Insn(0xb7, dst: 0, src: 0, off: 0, imm: 1),    // 13: r0 = XDP_DROP
            XdpSocket.Insn(0x95, dst: 0, src: 0, off: 0, imm: 0),    // 14: exit
            XdpSocket.Insn(0xb7, dst: 0, src: 0, off: 0, imm: 2),    // 15: pass: r0 = XDP_PASS
            XdpSocket.Insn(0x95, dst: 0, src: 0, off: 0, imm: 0),    // 16: exit
        ];
    }

    public void Dispose()
    {
        // The link first: the program stops running before its descriptor goes.
        if (_link >= 0)
        {
            _ = Libc.Close(_link);
        }

        if (_program >= 0)
        {
            _ = Libc.Close(_program);
        }

        _link = _program = -1;
    }
}
