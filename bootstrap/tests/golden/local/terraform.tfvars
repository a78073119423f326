ssh_private_key_file = "<examples>/example-key"
