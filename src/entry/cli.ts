console.log('nix-plan');
