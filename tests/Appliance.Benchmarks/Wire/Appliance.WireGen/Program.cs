using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Isthmus.DataPlane.Io;
using Isthmus.Packets;

namespace Isthmus.Benchmarks.Wire;

/// <summary>
/// Paced generator for the wire benchmark: sends <c>--rate</c> frames per second for <c>--seconds</c> from
/// one interface over an AF_PACKET socket with sendmmsg (batch ≤ 64), in small bursts spaced so that the
/// offered rate is even (a burst of min(64, rate × tick) frames whenever that many are due). Prints one
/// line: <c>offered_pps=… sent=… ingress_drops=… skipped=… seconds=… syscalls=…</c>.
/// With <c>--vxlan VNI</c> it emulates a hardware VTEP: each frame leaves already encapsulated (outer
/// Ethernet/IPv4/UDP/VXLAN from the <c>--outer-*</c> options, UDP checksum 0), so a receiver's VXLAN path is
/// driven without a kernel VTEP's bridge and encapsulation on the generator's CPU.
/// </summary>
/// <remarks>
/// <para>ingress_drops counts frames that sendmmsg reported as ENOBUFS: over veth that is the peer's
/// input backlog overflowing (the forwarding side's core is behind), so those frames were offered and
/// lost. skipped counts frames the generator gave up on because it was descheduled for more than
/// <c>--max-lag-ms</c> (it does not catch up with a burst); they were never offered.</para>
/// </remarks>
internal static unsafe class Program
{
    private const int AfPacket = 17;
    private const int SockRaw = 3;
    private const int SockCloExec = 0x80000;
    private const int MsgDontWait = 0x40;
    private const int EAgain = 11;
    private const int EIntr = 4;
    private const int ENoBufs = 105;
    private const int SolPacket = 263;
    private const int PacketQdiscBypass = 20;

    public static int Main(string[] args)
    {
        try
        {
            return Run(Options.Parse(args));
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            Console.Error.WriteLine($"wiregen: {e.Message}");
            Console.Error.WriteLine(Options.Usage);
            return 2;
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"wiregen: {e.Message}");
            return 1;
        }
    }

    private static int Run(Options o)
    {
        using var ns = o.Netns is null ? null : NetworkNamespace.Enter(o.Netns);
        var ifIndex = (int)IfNameToIndex(o.Interface);
        if (ifIndex == 0)
        {
            throw new IOException($"interface '{o.Interface}' not found (errno {Marshal.GetLastPInvokeError()})");
        }

        // Protocol 0: a send-only socket, it receives nothing.
        var fd = Socket(AfPacket, SockRaw | SockCloExec, 0);
        if (fd < 0)
        {
            throw new IOException($"socket(AF_PACKET) failed (errno {Marshal.GetLastPInvokeError()}); run as root");
        }

        try
        {
            if (o.QdiscBypass)
            {
                var one = 1;
                _ = SetSockOpt(fd, SolPacket, PacketQdiscBypass, &one, sizeof(int));
            }

            var sll = stackalloc byte[20];
            new Span<byte>(sll, 20).Clear();
            *(ushort*)sll = AfPacket;                 // sll_family
            *(ushort*)(sll + 2) = 0;                  // sll_protocol: 0 = send only
            *(int*)(sll + 4) = ifIndex;               // sll_ifindex
            if (Bind(fd, sll, 20) != 0)
            {
                throw new IOException($"bind({o.Interface}) failed (errno {Marshal.GetLastPInvokeError()})");
            }

            return Send(fd, o);
        }
        finally
        {
            _ = Close(fd);
        }
    }

    private static int Send(int fd, Options o)
    {
        const int slot = 256;
        var batch = o.Batch;
        var frames = (byte*)NativeMemory.AlignedAlloc((nuint)(batch * slot), 64);
        var iovs = (IoVec*)NativeMemory.AlignedAlloc((nuint)(batch * sizeof(IoVec)), 64);
        var msgs = (MMsgHdr*)NativeMemory.AlignedAlloc((nuint)(batch * sizeof(MMsgHdr)), 64);
        try
        {
            // One 60-byte Ethernet/IPv4/UDP frame (14 + 20 + 8 + 18 bytes of payload), or that frame in VXLAN
            // (110 bytes), copied into every slot.
            var spec = new Ipv4FrameSpec(o.SourceMac, o.DestinationMac, o.SourceIp, o.DestinationIp);
            var length = WireFrame.Write(new Span<byte>(frames, slot), spec, o.SourcePort, o.DestinationPort, o.FrameSize, o.Vtep);
            for (var i = 0; i < batch; i++)
            {
                new Span<byte>(frames, length).CopyTo(new Span<byte>(frames + (i * slot), slot));
                iovs[i] = new IoVec { Base = frames + (i * slot), Length = (nuint)length };
                msgs[i] = default;
                msgs[i].Header.Iov = iovs + i;
                msgs[i].Header.IovLength = 1;
            }

            long sent = 0, drops = 0, skipped = 0, syscalls = 0, otherErrors = 0;
            var freq = (double)Stopwatch.Frequency;
            var rate = (double)o.Rate;
            var burst = (long)Math.Clamp(Math.Round(rate * o.TickMicros / 1e6), 1, batch);
            var maxLag = (long)Math.Max(burst, rate * o.MaxLagMillis / 1000.0);
            var total = (long)Math.Round(rate * o.Seconds);
            var start = Stopwatch.GetTimestamp();
            var end = start + (long)(o.Seconds * freq);
            long attempted = 0; // sent + drops + skipped
            while (attempted < total)
            {
                var now = Stopwatch.GetTimestamp();
                if (now >= end + (long)(0.01 * freq))
                {
                    break;
                }

                var due = Math.Min(total, (long)((now - start) / freq * rate));
                var behind = due - attempted;
                if (behind > maxLag)
                {
                    // Descheduled (noisy VM): do not catch up with a large burst.
                    skipped += behind - burst;
                    attempted += behind - burst;
                    behind = burst;
                }

                if (behind < burst && due < total)
                {
                    continue; // spin: CPU0 belongs to the generator
                }

                while (behind > 0)
                {
                    var n = (int)Math.Min(batch, behind);
                    syscalls++;
                    var r = SendMMsg(fd, msgs, (uint)n, MsgDontWait);
                    if (r > 0)
                    {
                        sent += r;
                        attempted += r;
                        behind -= r;
                        continue;
                    }

                    var errno = r < 0 ? Marshal.GetLastPInvokeError() : EAgain;
                    if (errno == EIntr)
                    {
                        continue;
                    }

                    if (errno == EAgain)
                    {
                        break; // socket buffer full: try again on the next pass
                    }

                    // ENOBUFS: the frame reached the veth and its peer's backlog dropped it (offered, lost).
                    if (errno == ENoBufs)
                    {
                        drops++;
                    }
                    else
                    {
                        otherErrors++;
                    }

                    attempted++;
                    behind--;
                }
            }

            var seconds = (Stopwatch.GetTimestamp() - start) / freq;
            var offered = (sent + drops) / seconds;
            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"offered_pps={offered:F0} sent={sent} ingress_drops={drops} skipped={skipped} errors={otherErrors} seconds={seconds:F3} syscalls={syscalls} frame_bytes={length} burst={burst} vxlan_vni={(o.Vtep is { } v ? v.Vni.ToString(CultureInfo.InvariantCulture) : "none")}"));
            return 0;
        }
        finally
        {
            NativeMemory.AlignedFree(frames);
            NativeMemory.AlignedFree(iovs);
            NativeMemory.AlignedFree(msgs);
        }
    }

    [DllImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static extern int Socket(int domain, int type, int protocol);

    [DllImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static extern int Bind(int fd, void* address, uint addressLength);

    [DllImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static extern int SetSockOpt(int fd, int level, int name, void* value, uint valueLength);

    [DllImport("libc", EntryPoint = "sendmmsg", SetLastError = true)]
    private static extern int SendMMsg(int fd, MMsgHdr* vector, uint length, int flags);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int Close(int fd);

    [DllImport("libc", EntryPoint = "if_nametoindex", SetLastError = true)]
    private static extern uint IfNameToIndex([MarshalAs(UnmanagedType.LPUTF8Str)] string name);

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MMsgHdr
    {
        public MsgHdr Header;
        public uint Length;
    }
}

/// <summary>Command line of the generator.</summary>
internal sealed class Options
{
    public const string Usage =
        "usage: Appliance.WireGen --iface IF --dst-mac MAC --src-mac MAC --rate PPS --seconds S\n" +
        "         [--src-ip 10.10.0.10] [--dst-ip 10.10.0.99] [--sport 40000] [--dport 9] [--size 60]\n" +
        "         [--batch 64] [--tick-us 1000] [--max-lag-ms 2] [--netns NAME] [--qdisc-bypass]\n" +
        "         [--vxlan VNI --outer-src-mac MAC --outer-dst-mac MAC --outer-src-ip IP --outer-dst-ip IP\n" +
        "          [--outer-sport 49152] [--outer-dport 4789]]   (the frame leaves VXLAN-encapsulated, as from a VTEP)";

    public string Interface { get; private set; } = "";

    public string? Netns { get; private set; }

    public MacAddress DestinationMac { get; private set; }

    public MacAddress SourceMac { get; private set; }

    public Ipv4Address SourceIp { get; private set; } = Ipv4Address.Parse("10.10.0.10");

    // Not the VM's address: the VM's IP layer drops it silently (forwarding is off), so the receiver
    // sends no ICMP port-unreachable back through the path. Delivery is counted at the VM's interface.
    public Ipv4Address DestinationIp { get; private set; } = Ipv4Address.Parse("10.10.0.99");

    public ushort SourcePort { get; private set; } = 40000;

    public ushort DestinationPort { get; private set; } = 9;

    public int FrameSize { get; private set; } = 60;

    public long Rate { get; private set; }

    public double Seconds { get; private set; }

    public int Batch { get; private set; } = 64;

    public double TickMicros { get; private set; } = 1000;

    public double MaxLagMillis { get; private set; } = 2;

    public bool QdiscBypass { get; private set; }

    /// <summary>The outer headers when the generator emulates a VTEP (--vxlan), or null.</summary>
    public VtepSpec? Vtep { get; private set; }

    public static Options Parse(string[] args)
    {
        var o = new Options();
        bool dst = false, src = false;
        uint? vni = null;
        MacAddress? outerSrcMac = null, outerDstMac = null;
        Ipv4Address? outerSrcIp = null, outerDstIp = null;
        ushort outerSport = 49152, outerDport = 4789;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            var inv = CultureInfo.InvariantCulture;
            switch (args[i])
            {
                case "--iface": o.Interface = Next(); break;
                case "--netns": o.Netns = Next(); break;
                case "--dst-mac": o.DestinationMac = MacAddress.Parse(Next()); dst = true; break;
                case "--src-mac": o.SourceMac = MacAddress.Parse(Next()); src = true; break;
                case "--src-ip": o.SourceIp = Ipv4Address.Parse(Next()); break;
                case "--dst-ip": o.DestinationIp = Ipv4Address.Parse(Next()); break;
                case "--sport": o.SourcePort = ushort.Parse(Next(), inv); break;
                case "--dport": o.DestinationPort = ushort.Parse(Next(), inv); break;
                case "--size": o.FrameSize = int.Parse(Next(), inv); break;
                case "--rate": o.Rate = long.Parse(Next(), inv); break;
                case "--seconds": o.Seconds = double.Parse(Next(), inv); break;
                case "--batch": o.Batch = int.Parse(Next(), inv); break;
                case "--tick-us": o.TickMicros = double.Parse(Next(), inv); break;
                case "--max-lag-ms": o.MaxLagMillis = double.Parse(Next(), inv); break;
                case "--qdisc-bypass": o.QdiscBypass = true; break;
                case "--vxlan": vni = uint.Parse(Next(), inv); break;
                case "--outer-src-mac": outerSrcMac = MacAddress.Parse(Next()); break;
                case "--outer-dst-mac": outerDstMac = MacAddress.Parse(Next()); break;
                case "--outer-src-ip": outerSrcIp = Ipv4Address.Parse(Next()); break;
                case "--outer-dst-ip": outerDstIp = Ipv4Address.Parse(Next()); break;
                case "--outer-sport": outerSport = ushort.Parse(Next(), inv); break;
                case "--outer-dport": outerDport = ushort.Parse(Next(), inv); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }

        if (o.Interface.Length == 0 || !dst || !src || o.Rate <= 0 || o.Seconds <= 0)
        {
            throw new ArgumentException("--iface, --dst-mac, --src-mac, --rate and --seconds are required");
        }

        if (o.FrameSize is < 42 or > 128 || o.Batch is < 1 or > 1024)
        {
            throw new ArgumentException("--size must be 42..128 and --batch 1..1024");
        }

        if (vni is { } id)
        {
            if (id > VxlanHeader.MaxVni || outerSrcMac is not { } sm || outerDstMac is not { } dm || outerSrcIp is not { } si || outerDstIp is not { } di)
            {
                throw new ArgumentException("--vxlan needs a 24-bit VNI and --outer-src-mac, --outer-dst-mac, --outer-src-ip, --outer-dst-ip");
            }

            o.Vtep = new VtepSpec(sm, dm, si, di, id, outerSport, outerDport);
        }

        return o;
    }
}
