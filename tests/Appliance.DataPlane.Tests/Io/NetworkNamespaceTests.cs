using Isthmus.DataPlane.Io;
using Isthmus.DataPlane.Io.Native;

namespace Isthmus.DataPlane.Tests.Io;

public sealed class NetworkNamespaceTests
{
    [Fact]
    public void Enter_switches_the_thread_and_Dispose_restores_the_original_namespace()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        using var net = new VethPair();
        var before = NetworkNamespace.CurrentId;
        Assert.Equal(0u, Libc.IfNameToIndex(net.LinkA));

        string inside;
        using (NetworkNamespace.Enter(net.NamespaceA))
        {
            inside = NetworkNamespace.CurrentId;
            Assert.NotEqual(0u, Libc.IfNameToIndex(net.LinkA));
        }

        Assert.NotEqual(before, inside);
        Assert.Equal(before, NetworkNamespace.CurrentId);
        Assert.Equal(0u, Libc.IfNameToIndex(net.LinkA));
    }

    [Fact]
    public void Entering_a_missing_namespace_throws_and_leaves_the_thread_where_it_was()
    {
        if (!Requires.RootAndNetns())
        {
            return;
        }

        var before = NetworkNamespace.CurrentId;
        Assert.Throws<IOException>(() => NetworkNamespace.Enter($"istt-io-missing-{Random.Shared.Next(0x10000):x4}"));
        Assert.Throws<ArgumentException>(() => NetworkNamespace.Enter("../etc"));
        Assert.Equal(before, NetworkNamespace.CurrentId);
    }
}
