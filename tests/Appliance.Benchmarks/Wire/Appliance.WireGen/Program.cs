using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Io.Native;
using Isthmus.DataPlane.Pipeline;
using Isthmus.Packets;

namespace Isthmus.Benchmarks.Wire;

/// <summary>
/// Paced generator for the wire benchmark: sends <c>--rate</c> frames per second for <c>--seconds</c> from
/// one interface over an AF_PACKET socket with sendmmsg (batch ≤ 64), or with <c>--xdp</c> through an AF_XDP TX ring
/// (one sendto() kick per burst, about 0.6× the sending CPU's cost per frame), in small bursts spaced so that the
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
        var ifIndex = (int)Libc.IfNameToIndex(o.Interface);
        if (ifIndex == 0)
        {
            throw new IOException($"interface '{o.Interface}' not found (errno {Marshal.GetLastPInvokeError()})");
        }

        if (o.DropSink)
        {
            return HoldDropSink(ifIndex, o);
        }

        var frame = new byte[WireFrame.MaxLength];
        var spec = new Ipv4FrameSpec(o.SourceMac, o.DestinationMac, o.SourceIp, o.DestinationIp);
        var length = WireFrame.Write(frame, spec, o.SourcePort, o.DestinationPort, o.FrameSize, o.Vtep);
        using var sender = o.Xdp
            ? (Sender)new XdpSender(ifIndex, o.Interface, frame.AsSpan(0, length), o.Batch)
            : new PacketSender(ifIndex, o.Interface, frame.AsSpan(0, length), o.Batch, o.QdiscBypass);
        return Pace(sender, o, length);
    }

    /// <summary>
    /// <c>--drop-sink</c>: attaches the XDP drop (<see cref="DropSink"/>) to the interface, says so on one line, and holds
    /// it until SIGTERM, SIGINT or the end of standard input; the program leaves with the process.
    /// </summary>
    private static int HoldDropSink(int ifIndex, Options o)
    {
        using var sink = new DropSink(ifIndex, o.DestinationPort);
        using var stop = new ManualResetEventSlim();
        void Stop(PosixSignalContext c)
        {
            c.Cancel = true;
            stop.Set();
        }

        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"drop_sink=attached iface={o.Interface} udp_dport={o.DestinationPort}"));
        Console.Out.Flush();
        if (o.Seconds > 0)
        {
            stop.Wait(TimeSpan.FromSeconds(o.Seconds));
        }
        else
        {
            stop.Wait();
        }

        return 0;
    }

    /// <summary>
    /// Offers <c>--rate</c> frames per second for <c>--seconds</c>: a burst of min(batch, rate × tick) frames whenever that
    /// many are due; a sender that refuses (its ring or socket buffer full) is retried on the next pass, and frames more
    /// than <c>--max-lag-ms</c> late are skipped (never offered).
    /// </summary>
    private static int Pace(Sender sender, Options o, int length)
    {
        long sent = 0, drops = 0, skipped = 0, otherErrors = 0;
        var freq = (double)Stopwatch.Frequency;
        var rate = (double)o.Rate;
        var burst = (long)Math.Clamp(Math.Round(rate * o.TickMicros / 1e6), 1, o.Batch);
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
                // Wait for the next burst, giving CPU0 to whatever else is runnable on it: the receiving veth's NAPI
                // thread (--napi-thread) must drain the frames of the last burst before the next one arrives.
                Thread.Yield();
                continue;
            }

            while (behind > 0)
            {
                var r = sender.Send((int)Math.Min(o.Batch, behind));
                sent += r.Accepted;
                drops += r.Dropped;
                otherErrors += r.Errors;
                if (r.Dropped > 0)
                {
                    // The receiving veth refused frames (its ring full): let its NAPI thread, if it shares this CPU
                    // (--napi-thread), drain the ring before the next kick instead of dropping more.
                    Thread.Yield();
                }

                var done = r.Accepted + r.Dropped + r.Errors;
                attempted += done;
                behind -= done;
                if (r.Full)
                {
                    // Socket buffer or ring full: try again on the next pass, after letting whatever drains it run (a
                    // threaded NAPI of the receiving veth on this CPU, --napi-thread in wire-bench.sh).
                    Thread.Yield();
                    break;
                }
            }
        }

        var tail = sender.Drain();
        drops += tail.Dropped;
        sent += tail.Accepted - tail.Dropped;
        var seconds = (Stopwatch.GetTimestamp() - start) / freq;
        var offered = (sent + drops) / seconds;
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"offered_pps={offered:F0} sent={sent} ingress_drops={drops} skipped={skipped} errors={otherErrors} seconds={seconds:F3} syscalls={sender.Syscalls} frame_bytes={length} burst={burst} vxlan_vni={(o.Vtep is { } v ? v.Vni.ToString(CultureInfo.InvariantCulture) : "none")} method={sender.Method}"));
        return 0;
    }
}

/// <summary>Command line of the generator.</summary>
internal sealed class Options
{
    public const string Usage =
        "usage: Appliance.WireGen --iface IF --dst-mac MAC --src-mac MAC --rate PPS --seconds S\n" +
        "         [--src-ip 10.10.0.10] [--dst-ip 10.10.0.99] [--sport 40000] [--dport 9] [--size 60]\n" +
        "         [--batch 64] [--tick-us 1000] [--max-lag-ms 2] [--netns NAME] [--qdisc-bypass | --xdp]\n" +
        "       Appliance.WireGen --drop-sink --iface IF [--dport 9] [--seconds S]   (an XDP program drops IPv4 UDP to\n" +
        "         the port on IF until SIGTERM/SIGINT, or S seconds; rx_packets still counts every frame)\n" +
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

    /// <summary>Send through an AF_XDP TX ring (copy mode) instead of AF_PACKET sendmmsg.</summary>
    public bool Xdp { get; private set; }

    /// <summary>Not a generator: hold an XDP drop for UDP to <see cref="DestinationPort"/> on the interface (<see cref="DropSink"/>).</summary>
    public bool DropSink { get; private set; }

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
                case "--xdp": o.Xdp = true; break;
                case "--drop-sink": o.DropSink = true; break;
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

        if (o.DropSink)
        {
            return o.Interface.Length > 0 && o.Seconds >= 0 ? o : throw new ArgumentException("--drop-sink needs --iface");
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
