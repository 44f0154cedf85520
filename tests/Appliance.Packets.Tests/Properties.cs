using FsCheck;
using FsCheck.Fluent;

namespace Isthmus.Packets.Tests;

/// <summary>Runs FsCheck properties as plain xunit facts (FsCheck.Xunit is not available here).</summary>
internal static class Properties
{
    public const int DefaultRuns = 300;

    public static void Check<T>(Gen<T> generator, Func<T, bool> property, int runs = DefaultRuns) =>
        FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(runs), Prop.ForAll(generator.ToArbitrary(), property));

    public static void Check<T>(Gen<T> generator, Action<T> property, int runs = DefaultRuns) =>
        FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(runs), Prop.ForAll(generator.ToArbitrary(), property));

    public static Gen<byte[]> Bytes(int minLength, int maxLength) =>
        from length in Gen.Choose(minLength, maxLength)
        from bytes in Gen.ArrayOf(Gen.Choose(0, 255).Select(b => (byte)b), length)
        select bytes;

    public static Gen<ushort> UInt16 => Gen.Choose(0, 0xFFFF).Select(v => (ushort)v);

    public static Gen<byte> Byte => Gen.Choose(0, 0xFF).Select(v => (byte)v);

    public static Gen<uint> UInt32 =>
        from hi in UInt16
        from lo in UInt16
        select ((uint)hi << 16) | lo;

    public static Gen<MacAddress> Mac =>
        from hi in UInt32
        from lo in UInt16
        select new MacAddress(((ulong)hi << 16) | lo);

    public static Gen<Ipv4Address> Ipv4 => UInt32.Select(v => new Ipv4Address(v));

    public static Gen<Ipv6Address> Ipv6 =>
        from a in UInt32
        from b in UInt32
        from c in UInt32
        from d in UInt32
        select new Ipv6Address(((ulong)a << 32) | b, ((ulong)c << 32) | d);
}
