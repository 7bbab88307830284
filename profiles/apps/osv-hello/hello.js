console.log('Hello from OSv, packaged by guestforge');
