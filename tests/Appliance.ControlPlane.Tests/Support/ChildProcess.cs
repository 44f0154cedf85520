using Isthmus.ControlPlane.Apply;
using Isthmus.ControlPlane.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace Isthmus.ControlPlane.Tests.Support;

/// <summary>
/// Entry point of this assembly when run as a program (`dotnet Appliance.ControlPlane.Tests.dll
/// commit-loop STORE`): the crash test's child, committing valid documents as fast as it can and
/// printing each revision number once its commit returned, until it is killed; and `nice-refused`, the appliance in a
/// process without CAP_SYS_NICE (WorkerNiceApiTests).
/// </summary>
public static class ChildProcess
{
    public static int Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        if (args is ["nice-refused"])
        {
            // WorkerNiceApiTests: the appliance in a process without CAP_SYS_NICE.
            Api.WorkerNiceApiTests.RefusedNiceScenario().GetAwaiter().GetResult();
            Console.Out.WriteLine("nice refused: logged, counted, forwarding");
            return 0;
        }

        if (args.Length != 2 || args[0] != "commit-loop")
        {
            Console.Error.WriteLine("usage: commit-loop STORE | nice-refused");
            return 2;
        }

        using var store = ConfigStore.Open(args[1], TimeProvider.System);
        using var service = new ConfigService(store, TimeProvider.System, NullLogger<ConfigService>.Instance);
        var actor = new Actor("crash-child", "local");
        for (var i = 0; ; i++)
        {
            // Documents of varying size (1 to 60 extra bridge domains) so commits take a varying time.
            var outcome = service.Commit(Documents.Lab(vlan: 10 + (i % 100), extraDomains: 1 + (i % 60)), $"loop {i}", null, actor);
            if (!outcome.Ok)
            {
                Console.Error.WriteLine(string.Join("\n", outcome.Errors));
                return 1;
            }

            Console.Out.WriteLine(outcome.Revision!.Id);
            Console.Out.Flush();
        }
    }
}
