using System.CommandLine;
using Isthmus.Host.Api;
using Isthmus.Host.Configuration;
using Isthmus.Host.Hosting;
using Serilog;
using Serilog.Extensions.Logging;

namespace Isthmus.Host;

/// <summary>The composition root: `run` starts the appliance from a config file; `check` validates one.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var config = new Option<FileInfo>("--config") { Description = "Appliance configuration (JSON)", Required = true };
        var api = new Option<string>("--api") { Description = "Where the API listens", DefaultValueFactory = _ => "http://127.0.0.1:8088" };

        var run = new Command("run", "Run the appliance") { config, api };
        run.SetAction(result => Run(result.GetValue(config)!, result.GetValue(api)!));

        var check = new Command("check", "Validate a configuration file and list every error") { config };
        check.SetAction(result => Check(result.GetValue(config)!));

        var root = new RootCommand("Isthmus: per-tenant VLAN/VXLAN edge appliance") { run, check };
        return root.Parse(args).Invoke();
    }

    private static int Check(FileInfo file)
    {
        var (_, errors) = ApplianceConfig.Load(file.FullName);
        foreach (var error in errors)
        {
            Console.Error.WriteLine($"{file.Name}: {error}");
        }

        if (errors.Count == 0)
        {
            Console.WriteLine($"{file.Name}: valid");
        }

        return errors.Count == 0 ? 0 : 2;
    }

    private static int Run(FileInfo file, string apiUrl)
    {
        var (config, errors) = ApplianceConfig.Load(file.FullName);
        if (config is null || errors.Count > 0)
        {
            return Check(file);
        }

        Log.Logger = new LoggerConfiguration()
            .MinimumLevel.Information()
            .MinimumLevel.Override("Microsoft", Serilog.Events.LogEventLevel.Warning)
            .WriteTo.Console(formatProvider: System.Globalization.CultureInfo.InvariantCulture)
            .CreateLogger();
        try
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.Logging.AddProvider(new SerilogLoggerProvider(Log.Logger, dispose: false));
            builder.WebHost.UseUrls(apiUrl);
            builder.Services.ConfigureHttpJsonOptions(o =>
            {
                foreach (var converter in ApplianceConfig.JsonOptions.Converters)
                {
                    o.SerializerOptions.Converters.Add(converter);
                }
            });
            builder.Services.AddProblemDetails();
            builder.Services.AddSingleton(config);
            builder.Services.AddSingleton(TimeProvider.System);
            builder.Services.AddSingleton<DataPlaneService>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<DataPlaneService>());

            var app = builder.Build();
            app.MapDiagnosticsApi();
            app.Run();
            return 0;
        }
        catch (Exception e)
        {
            Log.Fatal(e, "Appliance stopped");
            return 1;
        }
        finally
        {
            Log.CloseAndFlush();
        }
    }
}
