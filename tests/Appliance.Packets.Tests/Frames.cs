namespace Isthmus.Packets.Tests;

/// <summary>Endpoints the tests build frames between.</summary>
internal static class Frames
{
    public static readonly MacAddress HostA = MacAddress.Parse("02:00:00:00:00:0a");
    public static readonly MacAddress HostB = MacAddress.Parse("02:00:00:00:00:0b");

    public static readonly Ipv4FrameSpec V4 = new(HostA, HostB, Ipv4Address.Parse("10.0.0.1"), Ipv4Address.Parse("10.0.0.2"));

    public static readonly Ipv6FrameSpec V6 = new(HostA, HostB, Ipv6Address.Parse("2001:db8::a"), Ipv6Address.Parse("2001:db8::b"));
}
