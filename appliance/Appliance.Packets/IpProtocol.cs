namespace Isthmus.Packets;

/// <summary>IP protocol / IPv6 Next Header numbers (IANA "Assigned Internet Protocol Numbers").</summary>
public static class IpProtocol
{
    public const byte HopByHopOptions = 0;
    public const byte Icmp = 1;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte Ipv6Routing = 43;
    public const byte Ipv6Fragment = 44;
    public const byte Gre = 47;
    public const byte Esp = 50;
    public const byte AuthenticationHeader = 51;
    public const byte Icmpv6 = 58;
    public const byte NoNextHeader = 59;
    public const byte Ipv6DestinationOptions = 60;
}
