using System.Runtime.InteropServices;

namespace Isthmus.PortGroup;

/// <summary>
/// A user-space 802.1Q tagging switch standing in for a hypervisor's vSwitch port group (the lab
/// kernel has no 8021q module). See <see cref="TaggingSwitch"/>.
/// </summary>
internal static class Program
{
    private const string Usage =
        "usage: Appliance.PortGroup --trunk <ifname> --access <ifname>:<vlan> [--access <ifname>:<vlan> ...] [--netns NAME]";

    private static int Main(string[] args)
    {
        if (!PortGroupOptions.TryParse(args, out var options, out var error))
        {
            Console.Error.WriteLine(error);
            Console.Error.WriteLine(Usage);
            return 2;
        }

        using var portGroup = new TaggingSwitch(options);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        Console.WriteLine(
            $"portgroup: trunk {options.Trunk}, access {string.Join(' ', options.Access.Select(a => $"{a.Interface}:{a.Vlan}"))}" +
            (options.Namespace is null ? string.Empty : $", netns {options.Namespace}"));
        portGroup.Run();
        Console.WriteLine($"portgroup: stopped; {portGroup.Stats}");
        return 0;

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            portGroup.Stop();
        }
    }
}

/// <summary>Command line of the port group.</summary>
internal sealed record PortGroupOptions(string Trunk, IReadOnlyList<(string Interface, ushort Vlan)> Access, string? Namespace)
{
    public static bool TryParse(string[] args, out PortGroupOptions options, out string error)
    {
        options = null!;
        error = string.Empty;
        string? trunk = null, netns = null;
        var access = new List<(string, ushort)>();
        for (var i = 0; i < args.Length; i++)
        {
            var value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--trunk" when value is not null:
                    trunk = value;
                    i++;
                    break;
                case "--netns" when value is not null:
                    netns = value;
                    i++;
                    break;
                case "--access" when value is not null:
                    var colon = value.LastIndexOf(':');
                    if (colon <= 0 || !ushort.TryParse(value.AsSpan(colon + 1), out var vlan) || vlan is 0 or > 4094)
                    {
                        error = $"--access wants <ifname>:<vlan 1-4094>, got '{value}'";
                        return false;
                    }

                    access.Add((value[..colon], vlan));
                    i++;
                    break;
                default:
                    error = $"unexpected argument '{args[i]}'";
                    return false;
            }
        }

        if (trunk is null || access.Count == 0)
        {
            error = "--trunk and at least one --access are required";
            return false;
        }

        options = new PortGroupOptions(trunk, access, netns);
        return true;
    }
}
