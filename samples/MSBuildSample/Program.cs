// The program is beside the point: the build around it uses a VM.
System.Console.WriteLine("built");
