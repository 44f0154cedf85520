namespace Isthmus.DataPlane.Tests.Io;

/// <summary>
/// The 4-hex-digit ids in the fixtures' names: a process-wide sequence from a random start, so fixtures of test classes
/// that run in parallel never draw the same names (random draws could, one time in 65,536 per pair alive at once), and
/// a namespace a killed earlier run left behind is unlikely to be hit.
/// </summary>
internal static class FixtureIds
{
    private static int _next = Random.Shared.Next(0x10000);

    public static string Next() => (Interlocked.Increment(ref _next) & 0xFFFF).ToString("x4", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>
/// Two fresh network namespaces joined by a veth pair, both ends up. Names are unique
/// (<c>istt-io-XXXX-a</c>/<c>-b</c>, links <c>istt-io-XXXXa</c>/<c>b</c>) and are deleted by exact name.
/// </summary>
internal sealed class VethPair : IDisposable
{
    /// <param name="ipv6">
    /// False: IPv6 is off in both namespaces before the link exists, so neither kernel sends anything on its own (a
    /// fresh link's neighbour discovery and MLD frames come at random moments in its first seconds), for tests that
    /// assert a ring or socket holds nothing but their own frames.
    /// </param>
    public VethPair(bool ipv6 = true)
    {
        var id = FixtureIds.Next();
        NamespaceA = $"istt-io-{id}-a";
        NamespaceB = $"istt-io-{id}-b";
        LinkA = $"istt-io-{id}a";
        LinkB = $"istt-io-{id}b";
        try
        {
            Ip.Run("netns", "add", NamespaceA);
            Ip.Run("netns", "add", NamespaceB);
            if (!ipv6)
            {
                Ip.Run("netns", "exec", NamespaceA, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6");
                Ip.Run("netns", "exec", NamespaceB, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6");
            }

            Ip.Run("link", "add", LinkA, "netns", NamespaceA, "type", "veth", "peer", "name", LinkB, "netns", NamespaceB);
            foreach (var (ns, link) in new[] { (NamespaceA, LinkA), (NamespaceB, LinkB) })
            {
                Ip.Run("-n", ns, "link", "set", "lo", "up");
                Ip.Run("-n", ns, "link", "set", link, "up");
            }

            Ip.WaitOperUp(NamespaceA, LinkA);
            Ip.WaitOperUp(NamespaceB, LinkB);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string NamespaceA { get; }

    public string NamespaceB { get; }

    public string LinkA { get; }

    public string LinkB { get; }

    public void Dispose()
    {
        // Deleting a namespace destroys the veth end inside it, and with it the peer.
        _ = Ip.TryRun("netns", "del", NamespaceA);
        _ = Ip.TryRun("netns", "del", NamespaceB);
    }
}

/// <summary>One fresh namespace with loopback up.</summary>
internal sealed class TestNamespace : IDisposable
{
    public TestNamespace()
    {
        Name = $"istt-io-{FixtureIds.Next()}-n";
        try
        {
            Ip.Run("netns", "add", Name);
            Ip.Run("-n", Name, "link", "set", "lo", "up");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public string Name { get; }

    public void Dispose() => _ = Ip.TryRun("netns", "del", Name);
}

/// <summary>Any number of namespaces and veth pairs under one unique prefix, all deleted by exact name.</summary>
internal sealed class Lab : IDisposable
{
    private readonly string _id = FixtureIds.Next();
    private readonly List<string> _namespaces = [];

    /// <summary>Creates <c>istt-io-XXXX-suffix</c> with loopback up.</summary>
    public string Namespace(string suffix)
    {
        var name = $"istt-io-{_id}-{suffix}";
        Ip.Run("netns", "add", name);
        _namespaces.Add(name);
        Ip.Run("-n", name, "link", "set", "lo", "up");
        return name;
    }

    /// <summary>Creates links <c>istt-io-XXXXsuffix</c> in each namespace, joined and up.</summary>
    public (string LinkX, string LinkY) Veth(string nsX, string suffixX, string nsY, string suffixY)
    {
        var (x, y) = ($"istt-io-{_id}{suffixX}", $"istt-io-{_id}{suffixY}");
        Ip.Run("link", "add", x, "netns", nsX, "type", "veth", "peer", "name", y, "netns", nsY);
        Ip.Run("-n", nsX, "link", "set", x, "up");
        Ip.Run("-n", nsY, "link", "set", y, "up");
        Ip.WaitOperUp(nsX, x);
        Ip.WaitOperUp(nsY, y);
        return (x, y);
    }

    public void Dispose()
    {
        foreach (var ns in _namespaces)
        {
            _ = Ip.TryRun("netns", "del", ns);
        }
    }
}
