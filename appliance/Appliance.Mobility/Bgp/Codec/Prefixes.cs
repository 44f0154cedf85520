using System.Net;

namespace Isthmus.Mobility.Bgp.Codec;

/// <summary>NLRI prefix encoding (RFC 4271 §4.3, RFC 4760 §5): a length in bits, then the fewest octets.</summary>
public static class Prefixes
{
    /// <summary>Reads a run of prefixes; false if a length is too long or a prefix overruns.</summary>
    public static bool TryRead(ReadOnlySpan<byte> field, bool ipv6, List<IPNetwork> into)
    {
        var maxBits = ipv6 ? 128 : 32;
        Span<byte> address = stackalloc byte[ipv6 ? 16 : 4];
        while (!field.IsEmpty)
        {
            var bits = field[0];
            var octets = (bits + 7) / 8;
            if (bits > maxBits || field.Length < 1 + octets)
            {
                return false;
            }

            address.Clear();
            field.Slice(1, octets).CopyTo(address);

            // Trailing bits past the prefix length are irrelevant (RFC 4271 §4.3): clear them.
            if (bits % 8 != 0)
            {
                address[octets - 1] &= (byte)(0xff << (8 - (bits % 8)));
            }

            into.Add(new IPNetwork(new IPAddress(address), bits));
            field = field[(1 + octets)..];
        }

        return true;
    }

    public static void Write(BgpWriter writer, IPNetwork prefix)
    {
        Span<byte> address = stackalloc byte[16];
        prefix.BaseAddress.TryWriteBytes(address, out _);
        writer.WriteByte((byte)prefix.PrefixLength);
        writer.Write(address[..((prefix.PrefixLength + 7) / 8)]);
    }

    public static int EncodedLength(IPNetwork prefix) => 1 + ((prefix.PrefixLength + 7) / 8);

    public static bool IsIpv6(IPNetwork prefix) => prefix.BaseAddress.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
}
