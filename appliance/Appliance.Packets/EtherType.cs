namespace Isthmus.Packets;

/// <summary>EtherType values (IEEE 802 numbers registry) the appliance handles.</summary>
public static class EtherType
{
    public const ushort Ipv4 = 0x0800;
    public const ushort Arp = 0x0806;
    public const ushort Rarp = 0x8035;

    /// <summary>IEEE 802.1Q customer VLAN tag (C-tag) TPID.</summary>
    public const ushort Vlan = 0x8100;

    /// <summary>IEEE 802.1ad service VLAN tag (S-tag) TPID, "QinQ".</summary>
    public const ushort QinQ = 0x88a8;

    public const ushort Ipv6 = 0x86dd;

    /// <summary>True for the TPIDs that introduce a VLAN tag.</summary>
    public static bool IsVlanTpid(ushort value) => value == Vlan || value == QinQ;
}
